/**
 * Names cozy-konnector-libs keeps for old konnectors: each logs that it is
 * deprecated, as upstream does, then does what its replacement does.
 */
import { hydrateAndFilter } from './hydrateAndFilter.js';
import { log } from './log.js';
import { requestFactory } from './request.js';

function deprecate(replacement, message) {
  return function deprecated(...args) {
    log('warn', message);
    return replacement.apply(this, args);
  };
}

export const filterData = deprecate(hydrateAndFilter, 'Use hydrateAndFilter now. filterData will be removed in cozy-konnector-libs@4');
export const request = deprecate(requestFactory, 'Use requestFactory instead of request. It will be removed in cozy-konnector-libs@4');
