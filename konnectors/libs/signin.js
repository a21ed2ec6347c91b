/**
 * `signin(options)`: logs in through an HTML form, as cozy-konnector-libs does.
 * It loads `url`, finds the form matched by `formSelector`, fills it with its
 * own inputs (hidden ones included) overridden by `formData`, posts it, and
 * resolves with the parsed answer when `validate(statusCode, parsedBody,
 * fullResponse)` is true.
 *
 * Errors (as Error messages): LOGIN_FAILED when `validate` says no,
 * INVALID_FORM when the selector matches no form, VENDOR_DOWN when a request
 * fails or answers a non-2xx status (the promise rejects); a missing `url` or
 * `formSelector`, and UNKNOWN_PARSING_STRATEGY, are thrown by the call itself.
 * `submitForm` is another name for it, as upstream.
 */
import Bluebird from 'bluebird';
import { load } from 'cheerio';
import { errors } from './errors.js';
import { InvalidArgumentError, RequestError, StatusCodeError } from './exceptions.js';
import { log as baseLog } from './log.js';
import { requestFactory } from './request.js';

const log = baseLog.namespace('signin');

const STRATEGIES = {
  cheerio: (body) => load(body),
  // A requestInstance with json on hands over a JSON answer already parsed.
  json: (body) => (typeof body === 'string' ? JSON.parse(body) : body),
  raw: (body) => body,
};

function defaultValidate(statusCode) {
  return statusCode === 200;
}

function vendorDown(error) {
  if (error instanceof RequestError || error instanceof StatusCodeError) {
    log('error', error.message);
    throw new Error(errors.VENDOR_DOWN);
  }
  throw error;
}

function parseForm($, formSelector, pageUrl) {
  const form = $(formSelector).first();
  if (!form.is('form')) {
    log('error', `element matching \`${formSelector}\` is not a \`form\``);
    throw new Error('INVALID_FORM');
  }
  const inputs = {};
  for (const { name, value } of form.serializeArray()) inputs[name] = value;
  return { action: new URL(form.attr('action') || pageUrl, pageUrl).href, inputs };
}

/**
 * Bad arguments throw at once, as upstream's (synchronous) checks do; what
 * happens on the vendor's side rejects the returned promise.
 *
 * @param {object} options
 * @param {string} options.url the page holding the login form
 * @param {string} options.formSelector a CSS selector matching the form
 * @param {object|Function} [options.formData] values to fill in, or `$ => values`
 * @param {'cheerio'|'json'|'raw'} [options.parse] how to parse the answer (default cheerio)
 * @param {Function} [options.validate] `(statusCode, parsedBody, fullResponse) => boolean`
 * @param {Function} [options.requestInstance] a requestFactory() instance to use
 * @returns {Promise<unknown>} the parsed answer to the form
 */
export function signin({ url, formSelector, formData = {}, parse = 'cheerio', validate = defaultValidate, ...requestOptions } = {}) {
  if (url === undefined) throw new InvalidArgumentError('signin: `url` must be defined');
  if (formSelector === undefined) throw new InvalidArgumentError('signin: `formSelector` must be defined');
  if (!Object.hasOwn(STRATEGIES, parse)) {
    log('error', `signin: parsing strategy \`${parse}\` unknown. Use one of \`raw\`, \`cheerio\` or \`json\``);
    throw new Error('UNKNOWN_PARSING_STRATEGY');
  }
  const { requestInstance, ...factoryOptions } = requestOptions;
  const rq = requestInstance || requestFactory({ jar: true, json: false, ...factoryOptions });
  // A bluebird promise, as upstream's (request-promise's): konnectors chain `.mapSeries()` and friends on it.
  return Bluebird.resolve(submitLoginForm(rq, { url, formSelector, formData, parseBody: STRATEGIES[parse], validate }));
}

async function submitLoginForm(rq, { url, formSelector, formData, parseBody, validate }) {
  const $ = await rq({ uri: url, transform: (body) => load(body) }).catch(vendorDown);
  const { action, inputs } = parseForm($, formSelector, url);
  const data = typeof formData === 'function' ? formData($) : formData;
  const [statusCode, parsedBody, fullResponse] = await rq({
    uri: action,
    method: 'POST',
    form: { ...inputs, ...data },
    // As upstream: some vendors check that the form was posted from its page.
    headers: { Referer: url },
    transform: (body, response) => [response.statusCode, parseBody(body), response],
  }).catch(vendorDown);
  if (!validate(statusCode, parsedBody, fullResponse)) throw new Error(errors.LOGIN_FAILED);
  return parsedBody;
}
