/*
 * Starts pouchdb-server with CouchDB's database names: `node couchdb-server-launcher.cjs <pouchdb-server bin> <options...>`,
 * the options with `-d <databases dir>`.
 *
 * express-pouchdb passes every database name through sanitize-filename, which drops "/": the name
 * "alice-cozy-example/io-cozy-bills" would be stored and listed as "alice-cozy-exampleio-cozy-bills",
 * and two (instance, doctype) pairs could meet in one database. A name CouchDB accepts is kept as it is
 * here (its characters cannot climb out of the data directory: no ".", no "\\"); LevelDB then stores
 * "a/b" in the folder a/b, as CouchDB stores it in a/b.couch. Any other name keeps the sanitizing.
 *
 * The folder a/ is made here too, before LevelDB first opens a/b. express-pouchdb makes it only after
 * an open failed for want of it (pouchdb#5668) and then opens again; but a second PUT of the same new
 * database meanwhile joins the open in progress (pouchdb shares one LevelDB per name) and, that open
 * having failed, never answers.
 *
 * The child exits when its stdin closes, so it never outlives the host, even one killed with SIGKILL
 * (a leftover would hold the LevelDB locks).
 */
'use strict';
const fs = require('node:fs');
const path = require('node:path');

process.stdin.on('end', () => process.exit(0)).resume();

const COUCHDB_DATABASE_NAME = /^[a-z][a-z0-9_$()+/-]*$/;

// pouchdb-server parses process.argv as `node <bin> <options...>`: drop this file from it.
process.argv.splice(1, 1);
const fromBin = require('node:module').createRequire(process.argv[1]);
const cleanFilenamePath = fromBin.resolve('express-pouchdb/lib/clean-filename');
const sanitize = require(cleanFilenamePath);
const dirOption = process.argv.indexOf('-d');
if (dirOption < 0) throw new Error('couchdb-server-launcher: pass pouchdb-server its databases directory with -d');
const databasesDir = path.resolve(process.argv[dirOption + 1]);
const madeFolders = new Set();
require.cache[cleanFilenamePath].exports = (name) => {
  if (!COUCHDB_DATABASE_NAME.test(name)) return sanitize(name);
  const folder = path.dirname(path.join(databasesDir, name));
  if (!madeFolders.has(folder)) {
    fs.mkdirSync(folder, { recursive: true });
    madeFolders.add(folder);
  }
  return name;
};

require(process.argv[1]);
