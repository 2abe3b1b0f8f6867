#!/usr/bin/env node
// Offline, strict validation of Kubernetes manifests (no cluster needed), for the deploy tests.
//
//   node validate-k8s.mjs NODE_MODULES FILE.yaml...      ('-' reads standard input)
//
// Two passes per document, because neither package alone is strict enough:
//  1. kubernetes-models (and @kubernetes-models/prometheus-operator for ServiceMonitor and
//     PrometheusRule) validate against the OpenAPI schemas: required fields, types, enums. Their
//     schemas allow unknown fields, so a typo such as `contianers` passes this pass whenever the
//     field is optional.
//  2. For built-in kinds, every field name is looked up in the attribute maps of
//     @kubernetes/client-node's generated models, which list each field of each type: an unknown
//     field is an error, as `kubectl apply --validate=strict` would report it.
// Prints one line per document; exits 1 if any document is invalid or no document was found.
import fs from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { pathToFileURL } from 'node:url';

const [nodeModules, ...files] = process.argv.slice(2);
if (!nodeModules || files.length === 0) {
  console.error('usage: validate-k8s.mjs NODE_MODULES FILE.yaml...');
  process.exit(2);
}
const require = createRequire(path.join(path.resolve(nodeModules), 'noop.js'));
const YAML = require('yaml');
// The client's models module directly: its index pulls in an HTTP stack that Node 20 cannot load.
const models = await import(
  pathToFileURL(path.join(path.resolve(nodeModules), '@kubernetes/client-node/dist/gen/models/all.js')));

function schemaClass(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['', apiVersion];
  const pkg = group === 'monitoring.coreos.com' ? '@kubernetes-models/prometheus-operator' : 'kubernetes-models';
  try {
    // By file path: the prometheus-operator package exports only its version directories.
    return require(path.join(path.resolve(nodeModules), pkg, group, version, kind))[kind];
  } catch {
    return null;
  }
}

const upper = (s) => s.charAt(0).toUpperCase() + s.slice(1);
function fieldModel(apiVersion, kind) {
  const [group, version] = apiVersion.includes('/') ? apiVersion.split('/') : ['core', apiVersion];
  const candidates = [`${upper(version)}${kind}`, `${upper(group.split('.')[0])}${upper(version)}${kind}`];
  return candidates.find((n) => models[n] && models[n].getAttributeTypeMap) || null;
}

// Walks `value` as client-node type `type`, reporting fields the type does not have.
function checkFields(value, type, where, errors) {
  if (value === null || value === undefined) return;
  let m;
  if ((m = /^Array<(.+)>$/.exec(type))) {
    if (!Array.isArray(value)) return void errors.push(`${where}: expected a list`);
    value.forEach((v, i) => checkFields(v, m[1], `${where}[${i}]`, errors));
  } else if ((m = /^\{ \[key: string\]: (.+); \}$/.exec(type))) {
    if (typeof value !== 'object' || Array.isArray(value)) return void errors.push(`${where}: expected a map`);
    for (const [k, v] of Object.entries(value)) checkFields(v, m[1], `${where}.${k}`, errors);
  } else if (models[type] && models[type].getAttributeTypeMap) {
    if (typeof value !== 'object' || Array.isArray(value)) return void errors.push(`${where}: expected an object (${type})`);
    const fields = new Map(models[type].getAttributeTypeMap().map((a) => [a.baseName, a.type]));
    for (const [k, v] of Object.entries(value)) {
      if (!fields.has(k)) errors.push(`${where}.${k}: unknown field (${type} has no such field)`);
      else checkFields(v, fields.get(k), `${where}.${k}`, errors);
    }
  }
  // Scalars, IntOrString, Date and `any` are left to the schema pass.
}

let documents = 0;
let invalid = 0;
for (const file of files) {
  const text = fs.readFileSync(file === '-' ? 0 : file, 'utf8');
  for (const doc of YAML.parseAllDocuments(text)) {
    if (doc.errors.length) {
      invalid++;
      console.log(`${file}: YAML error: ${doc.errors[0].message}`);
      continue;
    }
    const obj = doc.toJSON();
    if (!obj || typeof obj !== 'object') continue;  // empty document (e.g. a disabled template)
    documents++;
    const apiVersion = String(obj.apiVersion);
    const kind = String(obj.kind);
    const name = `${file}: ${apiVersion} ${kind} ${obj.metadata && obj.metadata.name}`;
    const errors = [];
    const Cls = schemaClass(apiVersion, kind);
    if (!Cls) {
      errors.push(`no schema for ${apiVersion} ${kind}`);
    } else {
      try {
        new Cls(obj).validate();
      } catch (e) {
        errors.push(...String(e.message).split('\n'));
      }
    }
    if (apiVersion !== 'monitoring.coreos.com/v1') {
      const model = fieldModel(apiVersion, kind);
      if (model) checkFields(obj, model, '', errors);
      else errors.push(`no field list for ${apiVersion} ${kind}`);
    }
    if (errors.length) {
      invalid++;
      console.log(`${name}: INVALID\n  - ${errors.join('\n  - ')}`);
    } else {
      console.log(`${name}: OK`);
    }
  }
}
if (documents === 0) {
  console.log('no Kubernetes documents found');
  process.exit(1);
}
process.exit(invalid ? 1 : 0);
