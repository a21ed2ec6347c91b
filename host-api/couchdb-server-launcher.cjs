/*
 * Starts pouchdb-server with CouchDB's database names: `node couchdb-server-launcher.cjs <pouchdb-server bin> <options...>`.
 *
 * express-pouchdb passes every database name through sanitize-filename, which drops "/": the name
 * "alice-cozy-example/io-cozy-bills" would be stored and listed as "alice-cozy-exampleio-cozy-bills",
 * and two (instance, doctype) pairs could meet in one database. A name CouchDB accepts is kept as it is
 * here (its characters cannot climb out of the data directory: no ".", no "\\"); LevelDB then stores
 * "a/b" in the folder a/b, as CouchDB stores it in a/b.couch. Any other name keeps the sanitizing.
 *
 * The child exits when its stdin closes, so it never outlives the host, even one killed with SIGKILL
 * (a leftover would hold the LevelDB locks).
 */
'use strict';
process.stdin.on('end', () => process.exit(0)).resume();

const COUCHDB_DATABASE_NAME = /^[a-z][a-z0-9_$()+/-]*$/;

// pouchdb-server parses process.argv as `node <bin> <options...>`: drop this file from it.
process.argv.splice(1, 1);
const fromBin = require('node:module').createRequire(process.argv[1]);
const cleanFilenamePath = fromBin.resolve('express-pouchdb/lib/clean-filename');
const sanitize = require(cleanFilenamePath);
require.cache[cleanFilenamePath].exports = (name) => (COUCHDB_DATABASE_NAME.test(name) ? name : sanitize(name));

require(process.argv[1]);
