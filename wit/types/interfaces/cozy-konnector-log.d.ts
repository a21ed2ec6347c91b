/** @module Interface cozy:konnector/log@0.1.0 **/
/**
 * Appends one line. Limits: log lines and log bytes per job; past them the
 * job ends.
 */
export function write(level: Level, message: string): void;
/**
 * # Variants
 * 
 * ## `"debug"`
 * 
 * ## `"info"`
 * 
 * ## `"warning"`
 * 
 * ## `"error"`
 * 
 * ## `"critical"`
 */
export type Level = 'debug' | 'info' | 'warning' | 'error' | 'critical';
