/**
 * The instances' owners: one record per Cozy instance in
 * `<prefix>/io-cozy-instances` ({_id: instance domain, email, two_factor,
 * totp_secret}), written by the operator, read to sign owners in.
 */
import { z } from 'zod';
import { Couch } from '../../../host-api/couchdb.ts';
import { instanceDomainSchema } from '../../../host-api/job-scope.ts';
import { ServeError } from '../errors.ts';
import { Collection } from '../store.ts';
import { newTotp, type Owner } from './auth.ts';

export interface InstanceDoc {
  _id: string;
  _rev?: string;
  email: string;
  two_factor: boolean;
  totp_secret?: string;
}

export const emailSchema = z.string().trim().toLowerCase().max(254).email('an e-mail address');

export const InstanceInputSchema = z.object({
  email: emailSchema,
  /** Turning it on makes a new TOTP secret, returned once. */
  twoFactor: z.boolean().default(false),
}).strict();

export { instanceDomainSchema };

export class Owners {
  private constructor(private readonly records: Collection<InstanceDoc>) {}

  static async open(couchUrl: string, prefix: string): Promise<Owners> {
    const records = new Collection<InstanceDoc>(new Couch(couchUrl), prefix, 'io.cozy.instances');
    await records.ensure([['email']]);
    return new Owners(records);
  }

  /** The owners of the instances this address owns (usually one; none for an unknown address). */
  async byEmail(email: string): Promise<Owner[]> {
    const docs = await this.records.find({ email }, { limit: 100 });
    return docs.map((doc) => ({ instance: doc._id, email: doc.email, ...(doc.two_factor && doc.totp_secret ? { totpSecret: doc.totp_secret } : {}) }));
  }

  /** Every record, without its TOTP secret. */
  async list(): Promise<Array<{ instance: string; email: string; twoFactor: boolean }>> {
    const docs = await this.records.find({}, { limit: 10_000 });
    return docs.map((doc) => ({ instance: doc._id, email: doc.email, twoFactor: doc.two_factor }));
  }

  /** Creates or changes an instance's record; the TOTP URI comes back only when 2FA is turned on now. */
  async put(instance: string, input: z.output<typeof InstanceInputSchema>): Promise<{ instance: string; email: string; twoFactor: boolean; totpUri?: string }> {
    const current = await this.records.get(instance).catch((e: unknown) => {
      if (e instanceof ServeError && e.kind === 'not-found') return undefined;
      throw e;
    });
    const fresh = input.twoFactor && !current?.two_factor ? newTotp(instance) : undefined;
    const secret = input.twoFactor ? fresh?.secret ?? current?.totp_secret : undefined;
    await this.records.put({ _id: instance, ...(current?._rev ? { _rev: current._rev } : {}), email: input.email, two_factor: input.twoFactor,
      ...(secret ? { totp_secret: secret } : {}) });
    return { instance, email: input.email, twoFactor: input.twoFactor, ...(fresh ? { totpUri: fresh.uri } : {}) };
  }
}
