/**
 * The konnector world's capabilities: every interface a konnector's component may import, each with the one
 * descriptor of the module that answers it (host-api/capability.ts). The runner derives its plumbing from this
 * list (runner/sandbox/capabilities.ts), its limits (runner/limits.ts) and the report's budgets. The order is
 * the world's: messages list the interfaces in it.
 */
import type { z } from 'zod';
import type { ImportObject } from '../wit/types/konnector.js';
import { shortName, type BudgetUsage, type Capability, type HostCapability, type JobScope, type ShortName } from './capability.ts';
import clock from './clock.ts';
import documents from './documents.ts';
import files from './files/index.ts';
import http from './http/index.ts';
import log from './log.ts';
import random from './random.ts';

export const CAPABILITIES = [http, documents, files, log, clock, random] as const satisfies readonly Capability[];

type Listed = (typeof CAPABILITIES)[number];

// Every interface of the world has its capability: this fails to type-check when the WIT gains one the list lacks.
const worldIsAnswered: Exclude<keyof ImportObject, Listed['interface']> extends never ? true : never = true;
void worldIsAnswered;

type HostListed = Extract<Listed, { answeredBy: 'host' }>;

export const HOST_CAPABILITIES = CAPABILITIES.filter((c): c is HostListed => c.answeredBy === 'host');

/** The same, each seen with its own types erased: what code common to all of them handles. */
const anyHost = HOST_CAPABILITIES as readonly HostCapability<HostListed['interface'], unknown, unknown>[];

/** One job's capabilities by short name: the instances the host answers its guest's calls with. */
export type JobCapabilities = { [C in HostListed as ShortName<C['interface']>]: ReturnType<C['create']> };

type LimitsSchemas = { [C in HostListed as ShortName<C['interface']>]: C['limits'] };

/** Each host capability's limits schema by short name, an absent one meaning its defaults: what runner/limits.ts composes. */
export const capabilityLimits = Object.fromEntries(anyHost.map((c) => [shortName(c.interface), c.limits.default({})])) as {
  [Name in keyof LimitsSchemas]: z.ZodDefault<LimitsSchemas[Name]>;
};

export type CapabilityLimits = { [Name in keyof LimitsSchemas]: z.output<LimitsSchemas[Name]> };

type BudgetOf<C> = C extends { usage(...args: never[]): Record<infer Budget, BudgetUsage> } ? Budget : never;

/** Every budget the capabilities report, by its name in the report. */
export type CapabilityBudget = BudgetOf<HostListed>;

/** A fresh instance of every host capability, for one job. */
export function createCapabilities(scope: JobScope, limits: CapabilityLimits): JobCapabilities {
  const created: Record<string, unknown> = {};
  for (const capability of anyHost) {
    const name = shortName(capability.interface);
    created[name] = capability.create(scope, limits[name]);
  }
  return created as JobCapabilities;
}

/** What the job's capabilities used of their budgets, in the list's order. */
export function capabilityBudgets(caps: JobCapabilities, limits: CapabilityLimits): Record<CapabilityBudget, BudgetUsage> {
  const budgets: Record<string, BudgetUsage> = {};
  for (const capability of anyHost) {
    const name = shortName(capability.interface);
    Object.assign(budgets, capability.usage(caps[name], limits[name]));
  }
  return budgets as Record<CapabilityBudget, BudgetUsage>;
}
