#!/usr/bin/env node
// A chat worker in Node.js: before it calls an LLM it asks resolverd which model, at which provider,
// with which credential (resolver.v1.ResolverService/ResolveModel), and when resolverd refuses it
// decodes the google.rpc error details and does what the reason calls for. See README.md.
import fs from 'node:fs';
import path from 'node:path';
import { parseArgs } from 'node:util';
import { fileURLToPath } from 'node:url';
import grpc from '@grpc/grpc-js';
import protoLoader from '@grpc/proto-loader';
import { ACTIONS, REASONS, decide } from './lib/reasons.mjs';
import { REPO_PROTO_DIR, Secret, decodeStatus, protoReasons, retryDelayMs } from './lib/status.mjs';

const USAGE = `usage: node worker.mjs --chat ID [--purpose chat|subagent|personal_override|title|compaction]
                      [--model-config ID] [--addr HOST:PORT] [--token-file F]
                      [--insecure | --tls-ca F] [--timeout SECONDS] [--retries N] [--show-secret]
       node worker.mjs --list-reasons

  --addr         resolverd's address (RESOLVER_ADDR; default 127.0.0.1:50051)
  --token-file   file holding the worker's bearer token (RESOLVER_TOKEN_FILE; or the token itself
                 in RESOLVER_TOKEN)
  --insecure     plaintext, e.g. resolverd dev on loopback; TLS otherwise (system roots or --tls-ca)
  --retries      how often to retry UNAVAILABLE, DATABASE_UNAVAILABLE and RATE_LIMITED (default 3)
  --show-secret  also print the API key
  --list-reasons print every error reason and what this worker does about it`;

const EXIT_USAGE = 2;

class UsageError extends Error {}

function parse(argv, env) {
  let values;
  try {
    ({ values } = parseArgs({
      args: argv,
      strict: true,
      allowPositionals: false,
      options: {
        addr: { type: 'string', default: env.RESOLVER_ADDR || '127.0.0.1:50051' },
        'token-file': { type: 'string', default: env.RESOLVER_TOKEN_FILE || '' },
        chat: { type: 'string', default: '' },
        'model-config': { type: 'string', default: '' },
        purpose: { type: 'string', default: 'chat' },
        insecure: { type: 'boolean', default: false },
        'tls-ca': { type: 'string', default: '' },
        timeout: { type: 'string', default: '5' },
        retries: { type: 'string', default: '3' },
        'show-secret': { type: 'boolean', default: false },
        'list-reasons': { type: 'boolean', default: false },
        help: { type: 'boolean', short: 'h', default: false },
      },
    }));
  } catch (e) {
    throw new UsageError(e.message);
  }
  const o = {
    addr: values.addr, tokenFile: values['token-file'], chat: values.chat.trim(),
    modelConfig: values['model-config'].trim(), insecure: values.insecure, tlsCA: values['tls-ca'],
    showSecret: values['show-secret'], listReasons: values['list-reasons'], help: values.help,
  };
  if (o.help || o.listReasons) return o;
  o.timeoutMs = Number(values.timeout) * 1000;
  if (!(o.timeoutMs > 0)) throw new UsageError(`--timeout ${values.timeout} is not a positive number of seconds`);
  o.retries = Number(values.retries);
  if (!Number.isInteger(o.retries) || o.retries < 0) throw new UsageError(`--retries ${values.retries} is not a whole number`);
  o.purpose = parsePurpose(values.purpose);
  // The chat id goes to resolverd as it is: resolverd validates it (and answers INVALID_ARGUMENT
  // with a BadRequest when it is malformed).
  if (!o.chat) throw new UsageError('--chat is required');
  if (o.insecure && o.tlsCA) throw new UsageError('--insecure excludes --tls-ca');
  if (o.tokenFile) {
    try {
      o.token = fs.readFileSync(o.tokenFile, 'utf8').trim();
    } catch (e) {
      throw new UsageError(`read --token-file: ${e.message}`);
    }
  } else {
    o.token = (env.RESOLVER_TOKEN || '').trim();
  }
  if (!o.token) throw new UsageError('--token-file (or RESOLVER_TOKEN_FILE, or RESOLVER_TOKEN) is required');
  return o;
}

const PURPOSES = ['chat', 'subagent', 'personal_override', 'title', 'compaction'];

function parsePurpose(s) {
  const p = s.trim().toLowerCase().replace(/-/g, '_').replace(/^purpose_/, '');
  if (!PURPOSES.includes(p)) throw new UsageError(`unknown purpose ${JSON.stringify(s)}: want one of ${PURPOSES.join(', ')}`);
  return `PURPOSE_${p.toUpperCase()}`;
}

function newClient(o) {
  const def = protoLoader.loadSync('resolver/v1/resolver.proto', {
    includeDirs: [REPO_PROTO_DIR], keepCase: true, longs: String, enums: String, defaults: true, oneofs: true,
  });
  const { ResolverService } = grpc.loadPackageDefinition(def).resolver.v1;
  let creds;
  if (o.insecure) {
    creds = grpc.credentials.createInsecure();
  } else {
    creds = grpc.credentials.createSsl(o.tlsCA ? fs.readFileSync(o.tlsCA) : null);
  }
  return new ResolverService(o.addr, creds);
}

function resolveOnce(client, o) {
  const md = new grpc.Metadata();
  md.set('authorization', `Bearer ${o.token}`);
  const req = { chat_id: o.chat, model_config_id: o.modelConfig, purpose: o.purpose };
  return new Promise((resolve, reject) => {
    client.ResolveModel(req, md, { deadline: Date.now() + o.timeoutMs }, (err, res) => (err ? reject(err) : resolve(res)));
  });
}

const codeNames = Object.fromEntries(Object.entries(grpc.status).map(([name, n]) => [n, name]));

// explain turns a failed call into what the worker needs: the decoded details and the action.
export function explain(err) {
  const details = decodeStatus(err.metadata);
  const codeName = codeNames[err.code] || `CODE_${err.code}`;
  const info = details && details.errorInfo;
  const { action, what } = decide(codeName, info);
  return { codeName, details, info, action, what, message: details ? details.message : err.details };
}

function formatMetadata(m) {
  const keys = Object.keys(m || {}).sort();
  return `{${keys.map((k) => `${k}=${m[k]}`).join(', ')}}`;
}

// report prints one line with the reason, the gRPC code, the metadata and the action, then the
// details and what to do.
function report(out, e) {
  const reason = e.info ? e.info.reason : '(none)';
  out.write(`resolverd error: reason=${reason} code=${e.codeName} metadata=${formatMetadata(e.info && e.info.metadata)} action=${e.action}\n`);
  out.write(`  message:     ${e.message}\n`);
  if (e.details && e.details.badRequest) {
    for (const v of e.details.badRequest.field_violations) {
      out.write(`  bad field:   ${v.field}: ${v.description}\n`);
    }
  }
  const delay = e.details && retryDelayMs(e.details.retryInfo);
  if (delay !== null && delay !== undefined) out.write(`  retry after: ${(delay / 1000).toFixed(3)}s (RetryInfo)\n`);
  if (e.details && e.details.others.length > 0) out.write(`  other details: ${e.details.others.join(', ')}\n`);
  out.write(`  what to do:  ${e.what}\n`);
  out.write(`  exit ${ACTIONS[e.action].exit}: ${ACTIONS[e.action].summary}\n`);
}

// backoffMs is the wait before retry number n (0-based): exponential from 200 ms, capped at 5 s,
// with jitter, and never shorter than the server's RetryInfo.
function backoffMs(n, retryInfoMs) {
  const exp = Math.min(5000, 200 * 2 ** n);
  const jittered = exp / 2 + Math.random() * (exp / 2);
  return Math.max(jittered, retryInfoMs || 0);
}

function printResolution(out, res, showSecret) {
  const p = res.provider;
  const m = res.model_config;
  const c = res.credential;
  const d = res.decision;
  const key = new Secret(c.api_key);
  c.api_key = ''; // from here on the key lives only in the Secret
  const source = c.source.replace(/^CREDENTIAL_SOURCE_/, '').toLowerCase();
  out.write(`model:        ${m.model} (config ${m.id}, context ${m.context_limit} tokens, compact at ${m.compression_threshold}%)\n`);
  out.write(`provider:     ${p.name} (type ${p.type}, id ${p.id})\n`);
  if (p.base_url) out.write(`base url:     ${p.base_url}\n`);
  out.write(`credential:   ${source}\n`);
  if (source !== 'ambient') {
    out.write(`key id:       ${c.key_id}\n`);
    out.write(`fingerprint:  ${c.fingerprint}\n`);
  }
  if (key.isEmpty()) {
    out.write("api key:      none (ambient credentials of the worker's environment)\n");
  } else {
    out.write(`api key:      ${showSecret ? key.reveal() : `${key} (--show-secret prints it)`}\n`);
  }
  out.write(d.fallback ? `fallback:     yes, ${d.requested_model_config_id} was unusable (${d.fallback_reason})\n` : 'fallback:     no\n');
  return { provider: p, model: m, key };
}

// checkReasons compares this worker's table with the proto enum resolver.v1.ErrorReason, when the
// repository defines it. It returns the problems found.
function checkReasons() {
  let names;
  try {
    names = protoReasons();
  } catch (e) {
    return [`cannot read proto/resolver/v1/errors.proto: ${e.message}`];
  }
  if (names === null) return [];
  const problems = [];
  for (const n of names) if (!REASONS[n]) problems.push(`the proto enum ErrorReason has ${n}, which this worker does not handle`);
  for (const n of Object.keys(REASONS)) if (!names.includes(n)) problems.push(`this worker handles ${n}, which the proto enum ErrorReason lacks`);
  return problems;
}

function listReasons(out, err) {
  // Metadata values show as <key>.
  const placeholders = new Proxy({}, { get: (_, k) => `<${String(k)}>` });
  for (const [reason, r] of Object.entries(REASONS)) {
    out.write(`${reason}\t${r.code}\t${r.action}\texit ${ACTIONS[r.action].exit}\t${r.what(placeholders)}\n`);
  }
  const problems = checkReasons();
  for (const p of problems) err.write(`node-worker: ${p}\n`);
  if (protoReasons() !== null && problems.length === 0) err.write('node-worker: matches the proto enum resolver.v1.ErrorReason\n');
  return problems.length === 0 ? 0 : 1;
}

export async function main(argv, env, out, err) {
  let o;
  try {
    o = parse(argv, env);
  } catch (e) {
    if (!(e instanceof UsageError)) throw e;
    err.write(`node-worker: ${e.message}\n${USAGE}\n`);
    return EXIT_USAGE;
  }
  if (o.help) {
    out.write(`${USAGE}\n`);
    return 0;
  }
  if (o.listReasons) return listReasons(out, err);
  for (const p of checkReasons()) err.write(`node-worker: warning: ${p}\n`);

  const client = newClient(o);
  try {
    for (let attempt = 0; ; attempt++) {
      try {
        const res = await resolveOnce(client, o);
        const { provider, model, key } = printResolution(out, res, o.showSecret);
        callModel(provider.type, provider.base_url, model.model, key);
        return 0;
      } catch (e) {
        if (e.code === undefined) throw e;
        const x = explain(e);
        if (x.action === 'retry' && attempt < o.retries) {
          const wait = backoffMs(attempt, x.details && retryDelayMs(x.details.retryInfo));
          err.write(`node-worker: ${x.info ? x.info.reason : x.codeName}: retrying in ${(wait / 1000).toFixed(3)}s (retry ${attempt + 1} of ${o.retries})\n`);
          await new Promise((r) => setTimeout(r, wait));
          continue;
        }
        report(err, x);
        return ACTIONS[x.action].exit;
      }
    }
  } finally {
    client.close();
  }
}

// callModel stands for the provider SDK call, e.g. new OpenAI({ apiKey: key.reveal(), baseURL }).
// The key leaves its Secret here and only here. An empty key means ambient credentials (bedrock:
// the worker's own AWS role).
function callModel(providerType, baseURL, model, key) {}

if (process.argv[1] && fs.realpathSync(process.argv[1]) === fs.realpathSync(fileURLToPath(import.meta.url))) {
  process.exitCode = await main(process.argv.slice(2), process.env, process.stdout, process.stderr);
}
