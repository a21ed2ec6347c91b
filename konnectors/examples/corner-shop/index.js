// Corner Shop konnector: signs in (the login form carries a CSRF token), walks the pages of the
// orders and saves the invoice of every order that was not cancelled.

const {
  CookieKonnector,
  scrape,
  log,
  utils,
  cozyClient
} = require('cozy-konnector-libs')

const models = cozyClient.new.models
const { Qualification } = models.document

const VENDOR = 'Corner Shop'
const baseUrl = 'http://shop.example'
const MONTHS = ['Jan', 'Feb', 'Mar', 'Apr', 'May', 'Jun', 'Jul', 'Aug', 'Sep', 'Oct', 'Nov', 'Dec']

class CornerShopKonnector extends CookieKonnector {
  async testSession() {
    log('info', 'Testing the session')
    // without a session the shop redirects to its sign-in page
    const $ = await this.request(`${baseUrl}/account`)
    return $('a.logout').length > 0
  }

  async fetch(fields) {
    if (!(await this.testSession())) {
      log('info', 'Signing in ...')
      await this.authenticate(fields.login, fields.password)
      log('info', 'Successfully logged in')
    }
    const orders = await this.fetchOrders()
    log('info', `Found ${orders.length} orders`)
    const bills = orders.filter(order => order.status !== 'Cancelled').map(toBill)
    await this.saveBills(bills, fields, {
      keys: ['vendorRef'],
      linkBankOperations: false
    })
  }

  // signin sends the form's hidden inputs too: the CSRF token goes with the credentials
  authenticate(email, password) {
    return this.signin({
      url: `${baseUrl}/account/login`,
      formSelector: 'form.login',
      formData: { email, password },
      validate: (statusCode, $) => {
        if ($('a.logout').length > 0) {
          return true
        } else {
          log('error', $('.alert-error').text().trim())
          return false
        }
      }
    })
  }

  async fetchOrders() {
    const orders = []
    let next = `${baseUrl}/account/orders`
    while (next) {
      const $ = await this.request(next)
      orders.push(
        ...scrape(
          $,
          {
            number: '.number',
            date: { sel: '.date', parse: parseDate },
            amount: { sel: '.total', parse: text => parseFloat(text.replace('€', '')) },
            status: '.status',
            invoiceUrl: { sel: '.invoice a', attr: 'href' }
          },
          '#orders tbody tr.order'
        )
      )
      const href = $('.pagination a[rel=next]').attr('href')
      next = href ? `${baseUrl}${href}` : null
    }
    return orders
  }
}

// "12 Mar 2024" -> Date (UTC midnight)
function parseDate(text) {
  const [day, month, year] = text.split(' ')
  return new Date(Date.UTC(Number(year), MONTHS.indexOf(month), Number(day)))
}

function toBill(order) {
  return {
    vendor: VENDOR,
    vendorRef: order.number,
    date: order.date,
    amount: order.amount,
    currency: 'EUR',
    fileurl: `${baseUrl}${order.invoiceUrl}`,
    filename: `${utils.formatDate(order.date)}_${VENDOR.replace(/ /g, '')}_${order.number}.pdf`,
    fileAttributes: {
      metadata: {
        contentAuthor: 'shop.example',
        issueDate: order.date,
        qualification: Qualification.getByLabel('grocery_invoice')
      }
    }
  }
}

const connector = new CornerShopKonnector({
  cheerio: true,
  json: false
})

connector.run()

module.exports = connector
