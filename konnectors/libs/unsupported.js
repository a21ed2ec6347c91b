/**
 * cozy-konnector-libs functions this runner does not provide yet. They exist so
 * that a konnector using one fails with a message naming it, rather than with
 * "x is not a function".
 */
import { UnsupportedError } from './exceptions.js';

function unsupported(name, hint) {
  const fn = () => {
    throw new UnsupportedError(name, hint);
  };
  Object.defineProperty(fn, 'name', { value: name });
  return fn;
}

const NO_FILES = 'files cannot be downloaded or saved yet';

export const saveFiles = unsupported('saveFiles', NO_FILES);
export const saveIdentity = unsupported('saveIdentity');
export const updateOrCreate = unsupported('updateOrCreate');
export const linkBankOperations = unsupported('linkBankOperations');
export const mkdirp = unsupported('mkdirp', NO_FILES);
export const solveCaptcha = unsupported('solveCaptcha', 'the sandbox cannot reach captcha services');
export const htmlToPDF = unsupported('htmlToPDF', NO_FILES);
export const createCozyPDFDocument = unsupported('createCozyPDFDocument', NO_FILES);
