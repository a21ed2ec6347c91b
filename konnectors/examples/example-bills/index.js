// Example Energy konnector: logs in to the customer area and saves the bills.
// Written like the konnectors of the Cozy community (cozy-konnector-template).

const {
  BaseKonnector,
  requestFactory,
  signin,
  scrape,
  saveBills,
  log,
  errors,
  cozyClient
} = require('cozy-konnector-libs')

// Importing models to get qualification by label
const models = cozyClient.new.models
const { Qualification } = models.document

const request = requestFactory({
  // The debug mode shows all the details about HTTP requests and responses.
  debug: false,
  // Activates [cheerio](https://cheerio.js.org/) parsing on each page
  cheerio: true,
  // If cheerio is activated do not forget to deactivate json parsing
  json: false,
  // This allows request-promise to keep cookies between requests
  jar: true
})

const VENDOR = 'Example Energy'
const baseUrl = 'http://energy.example'

module.exports = new BaseKonnector(start)

// The start function is run by the BaseKonnector instance only when it got all the account
// information (fields). When you run this connector yourself in "standalone" mode or "dev" mode,
// the account information come from ./konnector-dev-config.json file
async function start(fields) {
  if (!fields.login || !fields.password) {
    log('error', 'The account has no login or no password')
    throw new Error(errors.LOGIN_FAILED)
  }
  log('info', 'Authenticating ...')
  await authenticate(fields.login, fields.password)
  log('info', 'Successfully logged in')

  log('info', 'Fetching the list of bills')
  const $ = await request(`${baseUrl}/bills`)
  log('info', 'Parsing list of bills')
  const bills = parseBills($)
  log('info', `Found ${bills.length} bills`)

  log('info', 'Saving data to Cozy')
  await saveBills(bills, fields, {
    // This is a bank identifier which will be used to link bills to bank operations. These
    // identifiers should be at least a word found in the title of a bank operation related to this
    // bill. It is not case sensitive.
    identifiers: ['example energy'],
    sourceAccount: this.accountId,
    sourceAccountIdentifier: fields.login
  })
}

// This shows authentication using the [signin function](https://github.com/konnectors/libs/blob/master/packages/cozy-konnector-libs/docs/api.md#module_signin)
// even if this in another domain here, but it works as an example
function authenticate(username, password) {
  return signin({
    url: `${baseUrl}/login`,
    formSelector: 'form#login-form',
    formData: { login: username, password },
    // The validate function will check if the login request was a success. Every website has a
    // different way to show a failed login. Here the customer area shows a logout link.
    validate: (statusCode, $) => {
      if ($('a[href="/logout"]').length === 1) {
        return true
      } else {
        log('error', $('.error').text())
        return false
      }
    }
  })
}

// The goal of this function is to parse a HTML page wrapped by a cheerio instance
// and return an array of JS objects which will be saved to the cozy by saveBills
// (https://github.com/konnectors/libs/blob/master/packages/cozy-konnector-libs/docs/api.md#savebills)
function parseBills($) {
  const docs = scrape(
    $,
    {
      vendorRef: {
        sel: 'td.ref'
      },
      date: {
        sel: 'td.date',
        parse: parseFrenchDate
      },
      amount: {
        sel: 'td.amount',
        parse: normalizePrice
      },
      fileurl: {
        sel: 'td.download a',
        attr: 'href'
      }
    },
    'table#bills tbody tr'
  )
  return docs.map(doc => ({
    ...doc,
    currency: 'EUR',
    fileurl: `${baseUrl}${doc.fileurl}`,
    filename: `${doc.date.toISOString().slice(0, 10)}_${VENDOR.replace(/ /g, '-')}_${doc.vendorRef}.pdf`,
    vendor: VENDOR,
    fileAttributes: {
      metadata: {
        contentAuthor: 'energy.example',
        issueDate: doc.date,
        carbonCopy: true,
        qualification: Qualification.getByLabel('energy_invoice')
      }
    },
    metadata: {
      // It can be interesting to add the date of import. This is not mandatory but may be
      // useful for debugging or data migration
      importDate: new Date(),
      // Document version, useful for migration after change of document structure
      version: 1
    }
  }))
}

// "15/01/2024" -> Date (UTC midnight)
function parseFrenchDate(text) {
  const [day, month, year] = text.split('/').map(Number)
  return new Date(Date.UTC(year, month - 1, day))
}

// "54,20 €" -> 54.2
function normalizePrice(price) {
  return parseFloat(price.replace('€', '').replace(/\s/g, '').replace(',', '.'))
}
