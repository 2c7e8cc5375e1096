#!/usr/bin/env node
// TypeScript declarations of an rtframe app's messages, from its AsyncAPI document, with
// Modelina (@asyncapi/modelina). Run by `rtframe client-types` (rtframe/asyncapi/typescript.py),
// which finds the package (NODE_PATH) and passes the document on standard input.
//
// Usage: node modelina.js < asyncapi.json > messages.ts
//
// What it writes: one exported interface (or type) per schema Modelina makes a model of,
// sorted by name, then for each channel two unions, `<Channel>ServerFrame` (every frame the
// server sends on it) and `<Channel>ClientFrame` (every frame it accepts), so a client can
// switch on `type`. Before Modelina reads the document it is adjusted for the types only:
// - `{"allOf": [{"$ref": X}], ...}` (how rtframe writes a $ref with siblings for draft-07)
//   becomes `{"$ref": X}`, so the property is typed with X's model, not an anonymous copy;
// - a `type` property with a `const` value is required: the server always sends it, and
//   the unions above need it to tell messages apart.
// Exit status: 0, or 1 with the reason on standard error.
'use strict';

const fs = require('fs');
const { TypeScriptGenerator } = require('@asyncapi/modelina');
const MODELINA_VERSION = require('@asyncapi/modelina/package.json').version;

function simplify(node) {
  if (Array.isArray(node)) return node.map(simplify);
  if (node === null || typeof node !== 'object') return node;
  if (Array.isArray(node.allOf) && node.allOf.length === 1 && node.allOf[0].$ref) {
    return { $ref: node.allOf[0].$ref };
  }
  const out = {};
  for (const [key, value] of Object.entries(node)) {
    // examples, defaults and constants are data, not schemas
    out[key] = ['examples', 'default', 'const', 'enum'].includes(key) ? value : simplify(value);
  }
  const type = out.properties && out.properties.type;
  if (type && typeof type === 'object' && 'const' in type) {
    const required = Array.isArray(out.required) ? out.required : [];
    if (!required.includes('type')) out.required = ['type', ...required];
  }
  return out;
}

function schemaKey(ref) {
  const prefix = '#/components/schemas/';
  return typeof ref === 'string' && ref.startsWith(prefix) ? ref.slice(prefix.length) : null;
}

function pascal(text) {
  return text
    .split(/[^A-Za-z0-9]+/)
    .filter(Boolean)
    .map((w) => w[0].toUpperCase() + w.slice(1))
    .join('');
}

// channel id -> {server: [schema keys], client: [schema keys]}
function frames(doc) {
  const byChannel = {};
  const messageSchema = (ref) => {
    // operation messages point at #/channels/<id>/messages/<key>, which point at
    // #/components/messages/<key>, whose payload points at #/components/schemas/<key>
    const key = ref.split('/').pop();
    const message = doc.components.messages[key];
    return message ? schemaKey(message.payload && message.payload.$ref) : null;
  };
  for (const op of Object.values(doc.operations || {})) {
    const channel = op.channel.$ref.split('/').pop();
    const sides = (byChannel[channel] = byChannel[channel] || { server: new Set(), client: new Set() });
    const [out, back] = op.action === 'send' ? ['server', 'client'] : ['client', 'server'];
    for (const m of op.messages || []) sides[out].add(messageSchema(m.$ref));
    for (const m of (op.reply && op.reply.messages) || []) sides[back].add(messageSchema(m.$ref));
  }
  return byChannel;
}

async function main() {
  const doc = JSON.parse(fs.readFileSync(0, 'utf8'));
  const generator = new TypeScriptGenerator({
    modelType: 'interface',
    enumType: 'union',
    mapType: 'indexedObject',
    // keep property names as they are on the wire (`$pos`, `after_ms`)
    rawPropertyNames: true,
    processorOptions: {
      // rtframe's messages are closed records as far as a client is concerned
      jsonSchema: { ignoreAdditionalProperties: true, ignoreAdditionalItems: true },
      interpreter: { ignoreAdditionalProperties: true, ignoreAdditionalItems: true },
    },
  });
  const models = await generator.generate(simplify(doc));
  const names = {}; // schema key -> model name
  for (const m of models) {
    const id = m.model.originalInput && m.model.originalInput['x-parser-schema-id'];
    if (typeof id === 'string') names[id] = m.modelName;
  }
  const taken = new Set(models.map((m) => m.modelName));
  const lines = [
    `// TypeScript declarations of the messages of ${JSON.stringify(doc.info.title)} ${doc.info.version},`,
    `// generated from its AsyncAPI document by \`rtframe client-types\` with @asyncapi/modelina ${MODELINA_VERSION}.`,
    '// Do not edit: generate it again when the app changes.',
    '',
  ];
  const sorted = [...models].sort((a, b) => (a.modelName < b.modelName ? -1 : a.modelName > b.modelName ? 1 : 0));
  for (const m of sorted) {
    lines.push(m.result.replace(/^(interface|type|class|enum) /, 'export $1 '), '');
  }
  const channels = frames(doc);
  for (const id of Object.keys(channels).sort()) {
    const channel = doc.channels[id];
    for (const [side, suffix, what] of [
      ['server', 'ServerFrame', 'the server sends'],
      ['client', 'ClientFrame', 'the server accepts'],
    ]) {
      const members = [...channels[id][side]].filter(Boolean).map((k) => names[k]).filter(Boolean);
      if (members.length === 0) continue;
      let name = pascal(id) + suffix;
      for (let n = 2; taken.has(name); n++) name = pascal(id) + suffix + '_' + n;
      taken.add(name);
      lines.push(`/** Every frame ${what} on \`${channel.address}\`. */`);
      lines.push(`export type ${name} = ${[...new Set(members)].sort().join(' | ')};`, '');
    }
  }
  process.stdout.write(lines.join('\n'));
}

main().catch((err) => {
  process.stderr.write(String((err && err.stack) || err) + '\n');
  process.exit(1);
});
