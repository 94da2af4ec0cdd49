"""Permission sets: exactly what each identity's flows need, for one pipeline or for all."""

from __future__ import annotations

import pytest

from inferedge.core.identities import IDENTITIES, inbox_prefix
from inferedge.transport.permissions import RESPONSE_MAX, permissions
from inferedge.transport.subjects import ANY, QUEUE_GROUP, SubjectError


def test_the_sets_of_one_pipeline() -> None:
    edge, cloud, control, dispatcher = (
        permissions(i, "ns", "p") for i in ("edge", "cloud", "control", "dispatcher")
    )
    assert edge.publish == (
        "inferedge.ns.p.offload",
        "inferedge.ns.p.beat",
        "_INBOX.inferedge.cloud.>",
        "_INBOX.inferedge.dispatcher.>",
    )
    assert edge.subscribe == (
        "_INBOX.inferedge.edge.>",
        "inferedge.ns.p.reload.edge",
        "inferedge.ns.p.infer.*.*",
    )
    assert dispatcher.publish == ("inferedge.ns.p.infer.*.*", "_INBOX.inferedge.edge.>")
    assert dispatcher.subscribe == ("_INBOX.inferedge.dispatcher.>", "inferedge.ns.p.beat")
    assert cloud.publish == ("_INBOX.inferedge.edge.>",)
    assert cloud.subscribe == (
        f"inferedge.ns.p.offload {QUEUE_GROUP}",
        "_INBOX.inferedge.cloud.>",
        "inferedge.ns.p.reload.cloud",
    )
    assert control.publish == ("inferedge.ns.p.reload.cloud", "inferedge.ns.p.reload.edge")
    assert control.subscribe == ("_INBOX.inferedge.control.>",)
    assert (edge.responses, cloud.responses, control.responses) == (True, True, False)
    assert dispatcher.responses


@pytest.mark.parametrize("identity", IDENTITIES)
def test_every_identity_subscribes_under_its_own_inbox_prefix_only(identity: str) -> None:
    sets = permissions(identity)  # type: ignore[arg-type]
    inboxes = [s for s in sets.subscribe if s.startswith("_INBOX")]
    assert inboxes == [f"{inbox_prefix(identity)}.>"]  # type: ignore[arg-type]
    for pattern in (*sets.publish, *sets.subscribe):
        assert pattern.split(" ")[0].startswith(("inferedge.*.*.", "_INBOX.inferedge."))
        assert ">" not in pattern or pattern.startswith("_INBOX.inferedge.")


def test_responses_allow_a_go_ahead_or_ack_and_then_the_reply() -> None:
    block = permissions("cloud", "ns", "p").as_config()
    assert block["allow_responses"] == {"max": RESPONSE_MAX, "expires": "10m"}
    assert RESPONSE_MAX == 2
    assert "allow_responses" not in permissions("control").as_config()


@pytest.mark.parametrize(
    ("namespace", "pipeline", "named"),
    [("Bad", "p", "namespace 'Bad'"), ("ns", "a.b", "pipeline 'a.b'"), ("ns", ">", "'>'")],
)
def test_bad_scopes_are_named(namespace: str, pipeline: str, named: str) -> None:
    with pytest.raises(SubjectError, match=named):
        permissions("edge", namespace, pipeline)


def test_any_is_a_single_token_wildcard() -> None:
    assert permissions("edge", "ns", ANY).publish[0] == "inferedge.ns.*.offload"
    with pytest.raises(ValueError, match="identity 'admin'"):
        inbox_prefix("admin")  # type: ignore[arg-type]
