/**
 * The guest SDK: what `require('cozy-konnector-libs')` gives a konnector built
 * for the WebAssembly runner. Every top-level name of cozy-konnector-libs
 * 5.13, with its behaviour for the part implemented; the rest throws an
 * UnsupportedError naming it when called.
 * Runs inside the sandbox: web globals only, host access through host.js.
 */
export { BaseKonnector } from './BaseKonnector.js';
export { CookieKonnector } from './CookieKonnector.js';
export { requestFactory } from './request.js';
export { signin, signin as submitForm } from './signin.js';
export { scrape } from './scrape.js';
export { saveBills } from './saveBills.js';
export { saveFiles } from './saveFiles.js';
export { saveIdentity } from './saveIdentity.js';
export { updateOrCreate } from './updateOrCreate.js';
export { utils } from './utils.js';
export { cozyClient } from './cozyClient.js';
export { hydrateAndFilter } from './hydrateAndFilter.js';
export { addData } from './addData.js';
export { log } from './log.js';
export { errors } from './errors.js';
export { normalizeFilename } from './normalizeFilename.js';
export { manifest } from './manifest.js';
export { retry } from './retry.js';
export { Document } from './Document.js';
export { wrapIfSentrySetUp } from './sentry.js';
export { filterData, request } from './deprecated.js';
export { HostError, InvalidArgumentError, RequestError, StatusCodeError, UnsupportedError } from './exceptions.js';
export { categorize, createCategorizer, createCozyPDFDocument, htmlToPDF, linkBankOperations, mkdirp, solveCaptcha } from './unsupported.js';
