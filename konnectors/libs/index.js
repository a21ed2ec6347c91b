/**
 * The guest SDK: what `require('cozy-konnector-libs')` gives a konnector built
 * for the WebAssembly runner. Same names and behaviour as cozy-konnector-libs
 * 5.x for the part implemented; the rest throws an UnsupportedError naming it.
 * Runs inside the sandbox: web globals only, host access through host.js.
 */
export { BaseKonnector } from './BaseKonnector.js';
export { CookieKonnector } from './CookieKonnector.js';
export { requestFactory } from './request.js';
export { signin } from './signin.js';
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
export { HostError, InvalidArgumentError, RequestError, StatusCodeError, UnsupportedError } from './exceptions.js';
export { createCozyPDFDocument, htmlToPDF, linkBankOperations, mkdirp, solveCaptcha } from './unsupported.js';
