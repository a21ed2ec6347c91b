/**
 * `request-promise` and `request-promise-native` as catalog konnectors use
 * them: the SDK's request with their defaults (no JSON, no cheerio; anything
 * but a 2xx rejects with a StatusCodeError), `.defaults()` and `.jar()`.
 */
const { makeRequester } = require('./request.js');

module.exports = makeRequester({});
