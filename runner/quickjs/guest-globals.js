// The web globals the component path's engine (SpiderMonkey) has and QuickJS 2021-03-27 lacks, which the
// guest SDK, its prelude and konnectors' packages use: bundled as a script run before the konnector's
// (runner/quickjs/bundle.ts). Imports are evaluated in order: guest-web.js's globals exist when whatwg-url loads.
import { define } from './guest-web.js';
import { URL, URLSearchParams } from 'whatwg-url';
import { Headers, Request, Response } from './guest-fetch-classes.js';

define('URL', URL);
define('URLSearchParams', URLSearchParams);
define('Headers', Headers);
define('Request', Request);
define('Response', Response);
