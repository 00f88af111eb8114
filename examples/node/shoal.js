// A Shoal client for Node.js, on @grpc/grpc-js and @grpc/proto-loader: the
// protos as they are in the repository, the credentials file a server writes,
// and the google.rpc.Status every refusal carries, decoded.
//
//   const shoal = require("./shoal");
//   const api = shoal.connect({ credentialsFile, protosDir, rpcProtosDir });
//   const pool = await api.call(api.pools, "GetPool", { name: "pools/p" });
//
// Where the protos are: `protosDir` is the repository's `protos/` (it holds
// `shoal/v1/*.proto`); `rpcProtosDir` holds `google/rpc/*.proto` (from
// googleapis-common-protos, or a checkout of googleapis).
"use strict";

const fs = require("fs");
const path = require("path");
const grpc = require("@grpc/grpc-js");
const protoLoader = require("@grpc/proto-loader");
const protobuf = require("protobufjs");

const PUBLIC_PROTOS = ["account", "common", "job", "join", "pool", "storage", "task"].map(
  (n) => `shoal/v1/${n}.proto`,
);
const STATUS_DETAILS_KEY = "grpc-status-details-bin";

// The credentials file a Shoal server writes (`<data dir>/credentials.json`,
// `~/.shoal/credentials.json`): address, account, key and, when the API is
// served over TLS, ca_cert (the cluster CA certificate as PEM).
function loadCredentials(file) {
  return JSON.parse(fs.readFileSync(file, "utf8"));
}

// TLS verified against the cluster CA when the file names one; plaintext only
// for a server run without TLS.
function channelCredentials(creds) {
  if (creds.ca_cert) {
    return grpc.credentials.createSsl(Buffer.from(creds.ca_cert));
  }
  return grpc.credentials.createInsecure();
}

// The metadata every call carries: the account and its key.
function authMetadata(account, key) {
  const md = new grpc.Metadata();
  md.set("shoal-account", account);
  md.set("authorization", `Bearer ${key}`);
  return md;
}

// Decoders of google.rpc.Status and its details (ErrorInfo, BadRequest, ...),
// from the google/rpc protos themselves.
function statusDecoder(rpcProtosDir) {
  const root = new protobuf.Root();
  // google/protobuf/*.proto are built into protobufjs; the rest is looked up here.
  root.resolvePath = (origin, target) => {
    if (protobuf.common[target]) return target;
    const local = path.join(rpcProtosDir, target);
    return fs.existsSync(local) ? local : protobuf.util.path.resolve(origin, target);
  };
  root.loadSync(["google/rpc/status.proto", "google/rpc/error_details.proto"], { keepCase: true });
  const Status = root.lookupType("google.rpc.Status");
  const plain = { longs: String, enums: String, defaults: true, arrays: true };
  return (bytes) => {
    const status = Status.toObject(Status.decode(bytes), plain);
    // Each detail is a google.protobuf.Any: its type URL names the message.
    status.details = status.details.map((any) => {
      const typeName = any.type_url.slice(any.type_url.lastIndexOf("/") + 1);
      const type = root.lookupType(typeName);
      return { "@type": typeName, ...type.toObject(type.decode(any.value), plain) };
    });
    return status;
  };
}

// A gRPC error made readable: its code's name, its message, the ErrorInfo
// reason and domain, and the BadRequest field violations.
function describeError(err, decodeStatus) {
  const out = { code: err.code, codeName: grpc.status[err.code], message: err.details };
  const raw = err.metadata && err.metadata.get(STATUS_DETAILS_KEY)[0];
  if (!raw) return out;
  const status = decodeStatus(Buffer.isBuffer(raw) ? raw : Buffer.from(raw, "base64"));
  for (const d of status.details) {
    if (d["@type"] === "google.rpc.ErrorInfo") {
      out.reason = d.reason;
      out.domain = d.domain;
      out.metadata = d.metadata;
    } else if (d["@type"] === "google.rpc.BadRequest") {
      out.fieldViolations = d.field_violations;
    }
  }
  return out;
}

// Stubs of the public services, authenticated as `account` with `key`
// (by default those of the credentials file).
function connect({ credentialsFile, protosDir, rpcProtosDir, address, account, key }) {
  const creds = loadCredentials(credentialsFile);
  const definition = protoLoader.loadSync(PUBLIC_PROTOS, {
    keepCase: true,
    longs: String,
    enums: String,
    defaults: true,
    oneofs: true,
    includeDirs: [protosDir, rpcProtosDir],
  });
  const v1 = grpc.loadPackageDefinition(definition).shoal.v1;
  const target = address || creds.address;
  const channelCreds = channelCredentials(creds);
  const decodeStatus = statusDecoder(rpcProtosDir);
  const make = (Service) => new Service(target, channelCreds);
  const api = {
    tls: Boolean(creds.ca_cert),
    pools: make(v1.PoolService),
    jobs: make(v1.JobService),
    tasks: make(v1.TaskService),
    metadata: authMetadata(account || creds.account, key || creds.key),
    // A unary call as a promise; a refusal rejects with `describeError`'s object.
    call(stub, method, request, { deadlineSeconds = 30 } = {}) {
      const deadline = new Date(Date.now() + deadlineSeconds * 1000);
      return new Promise((resolve, reject) => {
        stub[method](request, api.metadata, { deadline }, (err, response) =>
          err ? reject(describeError(err, decodeStatus)) : resolve(response),
        );
      });
    },
    // A server-streaming call: `onMessage` sees each message and returns true to stop.
    stream(stub, method, request, onMessage, { deadlineSeconds = 60 } = {}) {
      const deadline = new Date(Date.now() + deadlineSeconds * 1000);
      return new Promise((resolve, reject) => {
        const call = stub[method](request, api.metadata, { deadline });
        let done = false;
        call.on("data", (msg) => {
          if (!done && onMessage(msg)) {
            done = true;
            call.cancel();
            resolve();
          }
        });
        call.on("error", (err) => {
          if (!done) reject(describeError(err, decodeStatus));
        });
        call.on("end", () => {
          if (!done) resolve();
        });
      });
    },
    close() {
      for (const s of [api.pools, api.jobs, api.tasks]) s.close();
    },
  };
  return api;
}

module.exports = { authMetadata, channelCredentials, connect, describeError, loadCredentials, statusDecoder };
