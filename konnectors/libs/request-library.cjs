/**
 * The `request` package as catalog konnectors use it, on the SDK's request
 * (the host's http, every egress rule applied): `request(options, callback)`
 * calling back with (error, response, body), `.get()`, `.post()`...,
 * `.defaults()`, `.jar()` and `.cookie()`. As with request, a vendor's 4xx or
 * 5xx is a response, not an error. What needs Node's sockets (streams,
 * `.pipe()`, agents) is not there.
 */
const { makeRequester } = require('./request.js');

const METHODS = ['get', 'head', 'post', 'put', 'patch', 'delete', 'options'];

function toOptions(first, second) {
  const options = second !== null && typeof second === 'object' ? second : {};
  return typeof first === 'string' || first instanceof URL ? { ...options, uri: first } : { ...first };
}

function withCallbacks(requester) {
  const request = (first, second, third) => {
    const callback = typeof second === 'function' ? second : third;
    const settled = requester(toOptions(first, second));
    if (typeof callback === 'function') settled.then((response) => callback(null, response, response.body), (error) => callback(error));
    // Without a callback nobody looks at the outcome: a failure must not end the job as unhandled.
    else settled.catch(() => {});
    return { abort() {}, on() { return this; } };
  };
  for (const method of METHODS) {
    request[method] = (first, second, third) => request({ ...toOptions(first, second), method: method.toUpperCase() }, typeof second === 'function' ? second : third);
  }
  request.del = request.delete;
  request.defaults = (options) => withCallbacks(requester.defaults(options));
  request.jar = requester.jar;
  request.cookie = requester.cookie;
  return request;
}

module.exports = withCallbacks(makeRequester({ simple: false, resolveWithFullResponse: true }));
