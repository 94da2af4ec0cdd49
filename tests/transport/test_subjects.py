"""Subjects: `inferedge.<namespace>.<pipeline>.<verb>` with validated tokens."""

from __future__ import annotations

import pytest

from inferedge.transport.subjects import VERBS, SubjectError, replica_subject, subject


@pytest.mark.parametrize("verb", VERBS)
def test_subject_joins_validated_tokens(verb: str) -> None:
    assert subject("default", "digits-split", verb) == f"inferedge.default.digits-split.{verb}"


def test_the_fixed_verbs() -> None:
    assert set(VERBS) == {"offload", "infer", "reload", "beat"}


def test_a_replica_subject_names_its_pool_and_replica() -> None:
    assert replica_subject("ns", "p", "nano", "nano-7f9c") == "inferedge.ns.p.infer.nano.nano-7f9c"
    with pytest.raises(SubjectError, match=r"replica 'a\.b'"):
        replica_subject("ns", "p", "nano", "a.b")
    with pytest.raises(SubjectError, match=r"pool '\*'"):
        replica_subject("ns", "p", "*", "r")


@pytest.mark.parametrize(
    ("namespace", "pipeline", "verb", "problem"),
    [
        ("", "p", "infer", "namespace '': expected a DNS-1123 label"),
        ("Default", "p", "infer", "namespace 'Default'"),
        ("ns", "a.b", "infer", "pipeline 'a.b'"),
        ("ns", "-p", "infer", "pipeline '-p'"),
        ("ns", "p-", "infer", "pipeline 'p-'"),
        ("ns", "p*", "infer", "pipeline 'p*'"),
        ("ns", ">", "infer", "pipeline '>'"),
        ("ns", "a" * 64, "infer", "pipeline 'aaaa"),
        ("n s", "p", "infer", "namespace 'n s'"),
        ("ns", "p", "explode", "verb 'explode': expected one of offload, infer, reload, beat"),
        ("ns", "p", "", "verb ''"),
    ],
)
def test_bad_tokens_are_named(namespace: str, pipeline: str, verb: str, problem: str) -> None:
    with pytest.raises(SubjectError, match=problem.replace("*", r"\*")) as caught:
        subject(namespace, pipeline, verb)
    assert "\n" not in str(caught.value)


def test_the_longest_label_is_accepted() -> None:
    assert subject("a" * 63, "b" * 63, "offload").count(".") == 3
