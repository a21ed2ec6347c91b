// Riverside Water konnector: logs in to the customer API with a bearer token, saves the customer
// profile as the account's identity and each contract's invoices as bills with their PDF.

const {
  BaseKonnector,
  requestFactory,
  log,
  errors,
  utils,
  cozyClient
} = require('cozy-konnector-libs')

const models = cozyClient.new.models
const { Qualification } = models.document

const request = requestFactory({
  // debug: true,
  json: true
})

const VENDOR = 'Riverside Water'
const baseUrl = 'http://water.example'
const apiUrl = `${baseUrl}/api/v1`

class RiversideWaterKonnector extends BaseKonnector {
  async fetch(fields) {
    if (!fields.login || !fields.password) {
      throw new Error(errors.LOGIN_FAILED)
    }
    let token = await this.getToken(fields)
    let me
    try {
      me = await this.api(token)(`${apiUrl}/me`)
    } catch (err) {
      if (err.statusCode !== 401) throw err
      log('info', 'The saved token was refused, logging in again')
      token = await this.getToken(fields, { renew: true })
      me = await this.api(token)(`${apiUrl}/me`)
    }
    const api = this.api(token)

    log('info', 'Saving the identity')
    await this.saveIdentity(
      {
        contact: {
          name: { givenName: me.first_name, familyName: me.last_name },
          email: [{ address: me.email }],
          phone: me.phone,
          address: [me.address]
        }
      },
      fields.login
    )

    const { contracts } = await api(`${apiUrl}/contracts`)
    log('info', `Found ${contracts.length} contracts`)
    for (const contract of contracts) {
      const { invoices } = await api(`${apiUrl}/contracts/${contract.id}/invoices`)
      const bills = invoices
        .filter(invoice => invoice.status !== 'cancelled')
        .map(invoice => toBill(invoice, token))
      log('info', `Saving ${bills.length} bills of ${contract.label}`)
      await this.saveBills(bills, fields, {
        contractId: contract.id,
        contractLabel: contract.label,
        keys: ['vendorRef'],
        fileIdAttributes: ['vendorRef'],
        linkBankOperations: false
      })
    }
  }

  // A request function sending the bearer token
  api(token) {
    return request.defaults({ headers: { Authorization: `Bearer ${token}` } })
  }

  // The token saved by the previous run while it is valid, else a new one
  async getToken(fields, { renew = false } = {}) {
    const { token, expiresAt } = this.getAccountData()
    // keep a margin of 5 minutes, a token must not expire during the run
    if (!renew && token && new Date(expiresAt).getTime() > Date.now() + 5 * 60 * 1000) {
      log('info', 'Reusing the saved API token')
      return token
    }
    log('info', 'Logging in to the API')
    let answer
    try {
      answer = await request.post(`${apiUrl}/auth/token`, {
        body: { email: fields.login, password: fields.password }
      })
    } catch (err) {
      if (err.statusCode === 401 || err.statusCode === 400) {
        log('error', err.error && err.error.error_description)
        throw new Error(errors.LOGIN_FAILED)
      }
      log('error', err.message)
      throw new Error(errors.VENDOR_DOWN)
    }
    const newExpiry = new Date(Date.now() + answer.expires_in * 1000).toISOString()
    try {
      await this.saveAccountData({ token: answer.access_token, expiresAt: newExpiry })
    } catch (err) {
      log('warn', `Could not keep the token for the next run: ${err.message}`)
    }
    return answer.access_token
  }
}

function toBill(invoice, token) {
  // "2024-01-31" is read as midnight UTC
  const date = new Date(invoice.issued_on)
  const amount = invoice.amount_cents / 100
  return {
    vendor: VENDOR,
    vendorRef: invoice.number,
    date,
    amount,
    currency: invoice.currency,
    isRefund: false,
    fileurl: `${baseUrl}${invoice.pdf_url}`,
    filename: `${utils.formatDate(date)}_${VENDOR}_${amount.toFixed(2)}EUR_${invoice.number}.pdf`,
    requestOptions: {
      headers: { Authorization: `Bearer ${token}` }
    },
    fileAttributes: {
      metadata: {
        contentAuthor: 'riverside-water',
        issueDate: date,
        carbonCopy: true,
        qualification: Qualification.getByLabel('water_invoice')
      }
    }
  }
}

module.exports = new RiversideWaterKonnector()
