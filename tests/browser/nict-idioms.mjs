// NICT's JSONP body read the ways scripts in the field read it, against a live server.
//
//   node nict-idioms.mjs http://127.0.0.1:PORT
//
// Prints one JSON line with what each idiom read; exits non-zero (with the reason on stderr)
// when an idiom that must work fails, or when go-webntp's compact JSONP, which these idioms
// are known to break on, unexpectedly passes (then this test no longer shows anything).
import assert from 'node:assert/strict';

const base = process.argv[2];
if (!base) {
  console.error('usage: node nict-idioms.mjs http://HOST:PORT');
  process.exit(64);
}

async function text(path) {
  const r = await fetch(base + path, { signal: AbortSignal.timeout(5000) });
  assert.equal(r.status, 200, `${path}: HTTP ${r.status}`);
  return r.text();
}

// 1. Cut the object out by position: `jsont( ` is 7 characters, ` )` the last 2.
const substring = (js) => JSON.parse(js.substring(7, js.length - 2));
// 2. Remove the callback's `jsont(` and `)`, then parse what is left (the first of each, as
//    String.replace does with a string, and every one, as a replace-all does).
const stripFirst = (js) => JSON.parse(js.replace('jsont(', '').replace(')', ''));
const stripAll = (js) => JSON.parse(js.replace(/jsont\(|\)/g, ''));
// 3. What a <script> tag does: run it with a `jsont` function in scope.
const script = (js) => {
  let got;
  new Function('jsont', js)((o) => { got = o; });
  return got;
};
const idioms = { substring, stripFirst, stripAll, script };

const js = await text('/cgi-bin/jsont?1232963971.248');
const read = {};
for (const [name, idiom] of Object.entries(idioms)) {
  read[name] = idiom(js);
}
for (const [name, v] of Object.entries(read)) {
  assert.deepEqual(v, read.script, `${name} reads what the script tag reads`);
  assert.deepEqual(Object.keys(v), ['id', 'it', 'st', 'leap', 'next', 'step'], name);
  assert.equal(v.it, 1232963971.248, name);
  assert.ok(Math.abs(v.st - Date.now() / 1000) < 60, `${name}: st ${v.st} is now`);
}
// NICT's JSON path: the same object, plain JSON.
const json = JSON.parse(await text('/cgi-bin/json?1232963971.248'));
assert.deepEqual(Object.keys(json), Object.keys(read.script));

// go-webntp's compact JSONP (`jsont({...});\n`, still what `/?callback=jsont` sends) is what
// the idioms break on: the position cut loses the `{`, the strip leaves the `;`.
const compact = await text('/?callback=jsont&1232963971.248');
const broken = [];
for (const name of ['substring', 'stripFirst', 'stripAll']) {
  try {
    idioms[name](compact);
  } catch {
    broken.push(name);
  }
}
assert.deepEqual(broken, ['substring', 'stripFirst', 'stripAll'], 'the compact body breaks them');
assert.equal(script(compact).it, 1232963971.248, 'a script tag reads either');

console.log(JSON.stringify({ body: js, read: read.script, compactBreaks: broken }));
