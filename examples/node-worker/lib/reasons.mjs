// What a chat worker does about each error resolverd sends. resolverd puts a google.rpc.ErrorInfo
// with domain "resolver.v1" on every error it answers; its reason is one of the strings below (the
// contract is docs/CONTRACT.md; the proto enum resolver.v1.ErrorReason lists the same names).

// Every outcome class has its own exit status, so a supervisor can tell them apart.
export const ACTIONS = {
  'fix-request': { exit: 3, summary: 'the request is wrong: fix it; retrying it unchanged gives the same answer' },
  'fix-config': { exit: 4, summary: "the worker's own token or configuration is wrong: fix the deployment" },
  'drop-job': { exit: 5, summary: 'what the job refers to is gone: drop the job, do not retry it' },
  'ask-owner': { exit: 6, summary: "only the chat's owner can fix this" },
  'ask-admin': { exit: 6, summary: "only a resolverd admin can fix this; use another model meanwhile" },
  'page-operator': { exit: 7, summary: 'resolverd or its data is broken: page the operator' },
  retry: { exit: 75, summary: 'transient: retry later with backoff' },
};

// named is "what id", or "what" alone when the metadata lacks the id.
const named = (what, id) => (id ? `${what} ${id}` : what);

// REASONS maps each ErrorInfo.reason to the gRPC code resolverd pairs it with, the action class,
// and what to do, given the ErrorInfo metadata (m).
export const REASONS = {
  INVALID_ARGUMENT: {
    code: 'INVALID_ARGUMENT', action: 'fix-request',
    what: () => 'fix the fields the BadRequest names (chat_id and model_config_id are UUIDs, purpose is set) and send it again',
  },
  UNAUTHENTICATED: {
    code: 'UNAUTHENTICATED', action: 'fix-config',
    what: () => 'the token is missing, unknown, expired or revoked: load the current token (RESOLVER_TOKEN_FILE) or have an admin mint a new worker token; retrying with this one fails again',
  },
  MISSING_SCOPE: {
    code: 'PERMISSION_DENIED', action: 'fix-config',
    what: (m) => `the worker token lacks the scope ${m.scope || '(unnamed)'}: have an admin mint a worker token with chat:read, model_config:read, ai_provider:read, ai_provider_key:read, user_ai_provider_key:read and credential:report`,
  },
  CHAT_NOT_FOUND: {
    code: 'NOT_FOUND', action: 'drop-job',
    what: (m) => `${named('chat', m.chat_id)} does not exist in resolverd (deleted, or never synced): drop the job`,
  },
  USER_NOT_FOUND: {
    code: 'NOT_FOUND', action: 'drop-job',
    what: (m) => `${named('user', m.user_id)} does not exist in resolverd: drop the job, or re-sync the user before retrying`,
  },
  MODEL_CONFIG_NOT_FOUND: {
    code: 'NOT_FOUND', action: 'fix-request',
    what: (m) => `${named('model config', m.model_config_id)} does not exist: refresh the worker's list of configs, or leave --model-config empty for the chat's own model`,
  },
  NOT_FOUND: {
    code: 'NOT_FOUND', action: 'fix-request',
    what: () => 'the resource the request names does not exist: check the ids in the request',
  },
  MODEL_CONFIG_DISABLED: {
    code: 'FAILED_PRECONDITION', action: 'ask-admin',
    what: (m) => `an admin disabled ${named('model config', m.model_config_id)}: use the chat's own model (a soft override such as --purpose subagent falls back by itself), or ask an admin to enable it`,
  },
  PROVIDER_NOT_FOUND: {
    code: 'FAILED_PRECONDITION', action: 'ask-admin',
    what: (m) => `the config's ${named('provider', m.provider_id)} was deleted: ask an admin to move the config to a live provider; use another config meanwhile`,
  },
  PROVIDER_DISABLED: {
    code: 'FAILED_PRECONDITION', action: 'ask-admin',
    what: (m) => `an admin disabled ${named('provider', m.provider_id)}: use a config of another provider, or ask an admin to enable it`,
  },
  NO_USABLE_MODEL_CONFIG: {
    code: 'FAILED_PRECONDITION', action: 'page-operator',
    what: () => "neither the chat's model nor the default config is usable: no chat can be served until an admin enables a default config with a credential",
  },
  USER_KEY_REQUIRED: {
    code: 'FAILED_PRECONDITION', action: 'ask-owner',
    what: (m) => `ask the chat's owner${m.user_id ? ` (user ${m.user_id})` : ''} to add their own API key for provider ${m.provider_id || '(unnamed)'} (BYOK); retrying before they do gives the same answer`,
  },
  NO_CREDENTIALS: {
    code: 'FAILED_PRECONDITION', action: 'ask-admin',
    what: (m) => `${named('provider', m.provider_id)} has no enabled central key and no other credential: ask an admin to add one (AdminService/AddProviderKey)`,
  },
  ALREADY_EXISTS: {
    code: 'ALREADY_EXISTS', action: 'fix-request',
    what: () => 'the resource exists already (an admin call): read it instead of creating it again',
  },
  DATABASE_UNAVAILABLE: {
    code: 'UNAVAILABLE', action: 'retry',
    what: () => "resolverd cannot reach its database: retry with backoff, and page the operator if it lasts",
  },
  INTERNAL: {
    code: 'INTERNAL', action: 'page-operator',
    what: (m) => `resolverd failed unexpectedly: page the operator with request_id ${m.request_id || '(none)'} (the server log has the cause)`,
  },
  RATE_LIMITED: {
    code: 'RESOURCE_EXHAUSTED', action: 'retry',
    what: () => "the token is over its request rate: wait the RetryInfo delay before retrying, and spread the load or ask the operator for a higher --rate-limit",
  },
  SECRET_UNREADABLE: {
    code: 'DATA_LOSS', action: 'page-operator',
    what: (m) => `the stored ${named('key', m.key_id)} does not open where it is stored (moved or edited outside resolverd, or sealed by an encryption key this replica lacks): page the operator; other chats are unaffected`,
  },
  PROVIDER_HOST_NOT_ALLOWED: {
    code: 'FAILED_PRECONDITION', action: 'ask-admin',
    what: (m) => `${named('provider', m.provider_id)} points at ${m.host || 'a host'} outside the deployment's allowed provider hosts: use a config of another provider, or ask an admin to fix its base_url`,
  },
  UNKNOWN_IDENTITY: {
    code: 'UNAUTHENTICATED', action: 'fix-config',
    what: (m) => `the worker's workload identity ${m.subject || '(unnamed)'} is bound to no scopes: have an admin bind it (AdminService/PutWorkloadIdentity); retrying before they do fails again`,
  },
  USER_KEY_INVALID: {
    code: 'FAILED_PRECONDITION', action: 'ask-owner',
    what: (m) => `the chat owner's own ${named('key', m.key_id)} for provider ${m.provider_id || '(unnamed)'} was refused by the provider (reported UNAUTHORIZED) and the provider requires the owner's key: ask the owner to put a new key; retrying before they do gives the same answer`,
  },
  CREDENTIALS_COOLING_DOWN: {
    code: 'RESOURCE_EXHAUSTED', action: 'retry',
    what: (m) => `every central key of ${named('provider', m.provider_id)} is cooling down after rate-limit or quota reports: retry no sooner than the RetryInfo delay, or use a config of another provider meanwhile`,
  },
};

// byCode is what to do when an error carries no resolverd ErrorInfo: a failure before the call
// reached resolverd (no connection, deadline) or from a proxy in between.
const byCode = {
  UNAVAILABLE: { action: 'retry', what: 'resolverd is unreachable: retry with backoff, and page the operator if it lasts' },
  DEADLINE_EXCEEDED: { action: 'retry', what: 'resolverd did not answer in time: retry with backoff' },
  RESOURCE_EXHAUSTED: { action: 'retry', what: 'something on the way is overloaded: retry with backoff' },
  UNAUTHENTICATED: { action: 'fix-config', what: "the call's credentials were refused: check the token and TLS settings" },
  PERMISSION_DENIED: { action: 'fix-config', what: "the call's credentials lack a permission: check the token" },
};

// decide returns the action for an error: by ErrorInfo reason when resolverd sent one, else by the
// gRPC code. An unknown reason (a newer resolverd) is paged, never retried blindly.
export function decide(codeName, info) {
  if (info && info.domain === 'resolver.v1') {
    const r = REASONS[info.reason];
    if (r) return { action: r.action, what: r.what(info.metadata || {}) };
    return { action: 'page-operator', what: `this worker does not know the reason ${info.reason}: update it, and tell the operator` };
  }
  const c = byCode[codeName];
  if (c) return c;
  return { action: 'page-operator', what: `unexpected ${codeName} without a resolverd reason: page the operator` };
}
