#!/usr/bin/env node
// Makes a Call and a Lease through a running tlsbroker with @grpc/grpc-js and prints the client
// ID of the socket each ran on (the ID an IMS Connect caller needs). docs/clients.md walks
// through it.
//
//   node example.js --target HOST:PORT --ca CA.pem --cert CLIENT.pem --key CLIENT.key
//                   [--server-name NAME] [--backend demo] [--message TEXT] [--proto-dir DIR]
//
// The backend must use the demo's framing: a 4-byte big-endian length that counts itself, then
// the payload (scripts/demo.sh's backend "demo" answers "re:" + payload). broker.proto is loaded
// at run time from the repository's proto/ (or --proto-dir).
//
// Exit codes: 0 both worked; 1 the broker answered with an error (printed with its code and the
// reason from the "tlsbroker-reason" trailer); 2 bad usage.
'use strict';

const fs = require('fs');
const path = require('path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');

const TIMEOUT_MS = 20000; // every RPC has a deadline
const REASON_KEY = 'tlsbroker-reason';

function parseArgs(argv) {
  const args = {
    backend: 'demo',
    message: 'hello from node',
    'proto-dir': path.join(__dirname, '..', '..', 'proto'),
  };
  for (let i = 0; i < argv.length; i += 2) {
    const name = argv[i].replace(/^--/, '');
    if (!argv[i].startsWith('--') || i + 1 >= argv.length) usage(`bad argument ${argv[i]}`);
    args[name] = argv[i + 1];
  }
  for (const required of ['target', 'ca', 'cert', 'key']) {
    if (!args[required]) usage(`--${required} is required`);
  }
  return args;
}

function usage(problem) {
  process.stderr.write(`example.js: ${problem}\nusage: node example.js --target HOST:PORT ` +
    '--ca CA.pem --cert CLIENT.pem --key CLIENT.key [--server-name NAME] [--backend NAME] ' +
    '[--message TEXT] [--proto-dir DIR]\n');
  process.exit(2);
}

// The broker's API from broker.proto, with the proto's field names (client_id, not clientId);
// `longs: String` keeps 64-bit socket IDs exact.
function loadApi(protoDir) {
  const definition = protoLoader.loadSync('tlsbroker/v1/broker.proto', {
    includeDirs: [protoDir],
    keepCase: true,
    longs: String,
    defaults: true,
    oneofs: true,
  });
  return grpc.loadPackageDefinition(definition).tlsbroker.v1;
}

// One frame of the demo backend's framing: 4-byte big-endian length including itself.
function frame(payload) {
  const header = Buffer.alloc(4);
  header.writeUInt32BE(payload.length + 4);
  return Buffer.concat([header, payload]);
}

// The reason of a failed RPC, from the "tlsbroker-reason" trailing metadata.
function reasonOf(error) {
  const values = error.metadata ? error.metadata.get(REASON_KEY) : [];
  return values.length ? String(values[0]) : null;
}

class BrokerError extends Error {
  constructor(error) {
    super(error.details || error.message);
    this.code = error.code;
    this.codeName = grpc.status[error.code];
    this.reason = reasonOf(error);
  }
}

function describe(info) {
  return `client ID ${info.client_id}, socket ${info.socket_id}, ` +
    `${info.reused ? 'reused' : 'new'}, ${info.tls_version} ${info.cipher}, ` +
    `backend certificate ${info.peer ? info.peer.subject : '?'}`;
}

function deadline() {
  return new Date(Date.now() + TIMEOUT_MS);
}

// Call: one request frame, one response frame, on a pooled socket.
function call(stub, backend, request) {
  return new Promise((resolve, reject) => {
    stub.Call({backend, request}, {deadline: deadline()}, (error, response) => {
      if (error) reject(new BrokerError(error));
      else resolve(response);
    });
  });
}

// Lease: opens the stream, waits for LeaseInfo, sends one frame, reads one response frame,
// releases, and waits for the stream to end OK. Resolves {info, response}.
function leaseExchange(stub, backend, clientId, request) {
  return new Promise((resolve, reject) => {
    const stream = stub.Lease({deadline: deadline()});
    let info = null;
    let received = Buffer.alloc(0);
    let response = null;
    let failed = false;
    stream.on('data', (message) => {
      if (message.kind === 'info') {
        info = message.info;
        stream.write({data: request});
      } else if (message.kind === 'data') {
        received = Buffer.concat([received, message.data]);
        if (response === null && received.length >= 4 &&
            received.length >= received.readUInt32BE(0)) {
          response = received.subarray(4, received.readUInt32BE(0));
          stream.write({release: {}});
          stream.end();
        }
      }
    });
    stream.on('error', (error) => {
      failed = true;
      reject(new BrokerError(error));
    });
    stream.on('status', (status) => {
      if (failed) return;
      if (status.code !== grpc.status.OK) {
        reject(new BrokerError({...status, details: status.details}));
      } else if (info === null || response === null) {
        reject(new Error('the lease ended before its LeaseInfo and response'));
      } else {
        resolve({info, response});
      }
    });
    stream.write({open: {backend, client_id: clientId || ''}});
  });
}

async function main() {
  const args = parseArgs(process.argv.slice(2));
  const api = loadApi(args['proto-dir']);
  const credentials = grpc.credentials.createSsl(
    fs.readFileSync(args.ca), fs.readFileSync(args.key), fs.readFileSync(args.cert));
  const options = args['server-name'] ?
    {'grpc.ssl_target_name_override': args['server-name']} : {};
  const stub = new api.BrokerService(args.target, credentials, options);
  const payload = Buffer.from(args.message);
  try {
    const result = await call(stub, args.backend, frame(payload));
    console.log(`call: ${describe(result.lease)}`);
    console.log(`call: response '${result.response.subarray(4).toString()}'`);
    console.log(`client ID: ${result.lease.client_id}`);

    // The same socket (by its client ID) for as long as the stream lives.
    const lease = await leaseExchange(stub, args.backend, result.lease.client_id,
      frame(Buffer.concat([payload, Buffer.from(' (lease)')])));
    console.log(`lease: ${describe(lease.info)}`);
    console.log(`lease: response '${lease.response.toString()}'`);
    console.log(`lease: released, client ID ${lease.info.client_id}`);
    return 0;
  } catch (error) {
    if (!(error instanceof BrokerError)) throw error;
    console.log(`error: ${error.codeName} reason ${error.reason}: ${error.message}`);
    return 1;
  } finally {
    stub.close();
  }
}

main().then((code) => { process.exitCode = code; }, (error) => {
  process.stderr.write(`example.js: ${error.stack || error}\n`);
  process.exitCode = 3;
});
