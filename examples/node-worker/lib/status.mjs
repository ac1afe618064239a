// Decoding resolverd's rich errors: the grpc-status-details-bin trailer holds a google.rpc.Status
// whose details are google.protobuf.Any messages: a google.rpc.ErrorInfo (always, from resolverd),
// a google.rpc.BadRequest (invalid arguments) and a google.rpc.RetryInfo (when to try again).
import fs from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import protobuf from 'protobufjs';

const here = path.dirname(fileURLToPath(import.meta.url));
// The repository's own protos (resolver/v1/...) and the vendored google/rpc protos.
export const REPO_PROTO_DIR = path.resolve(here, '..', '..', '..', 'proto');
export const GOOGLE_PROTO_DIR = path.resolve(here, '..', 'third_party', 'googleapis');

function newRoot() {
  const root = new protobuf.Root();
  // Imports resolve against our two directories; google/protobuf/* falls through to the copies
  // protobufjs bundles.
  root.resolvePath = (origin, target) => {
    for (const dir of [REPO_PROTO_DIR, GOOGLE_PROTO_DIR]) {
      const p = path.join(dir, target);
      if (fs.existsSync(p)) return p;
    }
    return target;
  };
  return root;
}

const rpc = newRoot().loadSync(['google/rpc/status.proto', 'google/rpc/error_details.proto'], { keepCase: true });
const Status = rpc.lookupType('google.rpc.Status');
const toObject = { longs: String, enums: String, defaults: true, arrays: true, objects: true };

// decodeStatus returns the details of a failed call's trailers: { status, errorInfo, badRequest,
// retryInfo, others }, or null when there is no grpc-status-details-bin trailer (a failure before
// resolverd answered, such as no connection).
export function decodeStatus(metadata) {
  const raw = metadata ? metadata.get('grpc-status-details-bin') : [];
  if (!raw || raw.length === 0) return null;
  const status = Status.toObject(Status.decode(raw[0]), toObject);
  const out = { code: status.code, message: status.message, errorInfo: null, badRequest: null, retryInfo: null, others: [] };
  for (const any of status.details) {
    const typeName = any.type_url.slice(any.type_url.lastIndexOf('/') + 1);
    let type;
    try {
      type = rpc.lookupType(typeName);
    } catch {
      out.others.push(typeName);
      continue;
    }
    const msg = type.toObject(type.decode(any.value), toObject);
    switch (typeName) {
      case 'google.rpc.ErrorInfo': out.errorInfo = msg; break;
      case 'google.rpc.BadRequest': out.badRequest = msg; break;
      case 'google.rpc.RetryInfo': out.retryInfo = msg; break;
      default: out.others.push(typeName);
    }
  }
  return out;
}

// retryDelayMs is RetryInfo.retry_delay in milliseconds, or null without one.
export function retryDelayMs(retryInfo) {
  const d = retryInfo && retryInfo.retry_delay;
  if (!d) return null;
  return Number(d.seconds) * 1000 + Math.ceil(Number(d.nanos) / 1e6);
}

// protoReasons returns the value names of the enum resolver.v1.ErrorReason when the repository's
// protos define it (proto/resolver/v1/errors.proto), without the zero value; null when they do not.
export function protoReasons() {
  const file = path.join(REPO_PROTO_DIR, 'resolver', 'v1', 'errors.proto');
  if (!fs.existsSync(file)) return null;
  const root = newRoot().loadSync('resolver/v1/errors.proto', { keepCase: true });
  let e;
  try {
    e = root.lookupEnum('resolver.v1.ErrorReason');
  } catch {
    return null;
  }
  return Object.entries(e.values)
    .filter(([, n]) => n !== 0)
    .map(([name]) => name.replace(/^ERROR_REASON_/, ''));
}

// Secret holds an API key so that printing, logging or JSON-encoding it shows no key; reveal() is the
// one way out, for the provider SDK call.
export class Secret {
  #value;
  constructor(value) { this.#value = value; }
  reveal() { return this.#value; }
  isEmpty() { return !this.#value; }
  toString() { return '[redacted]'; }
  toJSON() { return '[redacted]'; }
  [Symbol.for('nodejs.util.inspect.custom')]() { return 'Secret [redacted]'; }
}
