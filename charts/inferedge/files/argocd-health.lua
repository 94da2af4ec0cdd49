-- Argo CD health of an inferedge.io InferencePipeline.
-- Register it in argocd-cm as resource.customizations.health.inferedge.io_InferencePipeline
-- (docs/gitops.md). Order matters: a spec the operator has not seen yet is Progressing, a
-- Failed phase is Degraded even if older pods still serve, and only a Ready condition that is
-- True for the current generation is Healthy.
local hs = { status = "Progressing", message = "Waiting for the operator" }
if obj.status == nil then
  return hs
end
local status = obj.status
local generation = obj.metadata ~= nil and obj.metadata.generation or nil
if generation ~= nil and status.observedGeneration ~= nil and status.observedGeneration < generation then
  hs.message = "Waiting for the operator to observe generation " .. tostring(generation)
  return hs
end
local ready = nil
local failing = nil -- the first False condition that says why
if status.conditions ~= nil then
  for _, condition in ipairs(status.conditions) do
    if condition.type == "Ready" then
      ready = condition
    end
    if failing == nil and condition.status == "False" and condition.message ~= nil and condition.message ~= "" then
      failing = condition
    end
  end
end
if status.phase == "Failed" then
  hs.status = "Degraded"
  if status.message ~= nil and status.message ~= "" then
    hs.message = status.message
  elseif failing ~= nil then
    hs.message = failing.type .. ": " .. failing.message
  else
    hs.message = "Failed"
  end
  return hs
end
if ready ~= nil and ready.status == "True" then
  hs.status = "Healthy"
  hs.message = ready.message or "Ready"
  return hs
end
if ready ~= nil and ready.message ~= nil and ready.message ~= "" then
  hs.message = ready.message
elseif status.phase ~= nil then
  hs.message = "Phase: " .. status.phase
end
return hs
