// Paper Lantern Books konnector: logs in to the members area, walks the catalogue pages and
// saves every book with its cover. Based on cozy-konnector-template (books.toscrape.com).

const {
  BaseKonnector,
  requestFactory,
  signin,
  scrape,
  saveFiles,
  hydrateAndFilter,
  addData,
  log
} = require('cozy-konnector-libs')
const cheerio = require('cheerio')

const request = requestFactory({
  // The debug mode shows all the details about HTTP requests and responses.
  // debug: true,
  // Activates [cheerio](https://cheerio.js.org/) parsing on each page
  cheerio: true,
  // If cheerio is activated do not forget to deactivate json parsing
  json: false,
  // This allows request-promise to keep cookies between requests
  jar: true
})

const VENDOR = 'Paper Lantern Books'
const baseUrl = 'http://books.example'
const DOCTYPE = 'com.paperlantern.books'
const RATINGS = { One: 1, Two: 2, Three: 3, Four: 4, Five: 5 }

module.exports = new BaseKonnector(start)

async function start(fields) {
  log('info', 'Authenticating ...')
  await authenticate(fields.login, fields.password)
  log('info', 'Successfully logged in')

  log('info', 'Fetching the catalogue')
  const books = await fetchCatalogue(`${baseUrl}/catalogue/page-1.html`)
  log('info', `Found ${books.length} books`)

  log('info', 'Saving the covers')
  const withCovers = await saveFiles(
    books.map(book => ({
      ...book,
      fileurl: book.coverUrl,
      filename: `${book.upc}${book.coverUrl.slice(book.coverUrl.lastIndexOf('.'))}`
    })),
    fields,
    {
      subPath: 'covers',
      // a cover is the same file as long as the book is the same
      fileIdAttributes: ['upc'],
      sourceAccount: this.accountId,
      sourceAccountIdentifier: fields.login
    }
  )

  const documents = withCovers.map(book => ({
    upc: book.upc,
    title: book.title,
    price: book.price,
    currency: 'GBP',
    rating: book.rating,
    available: book.available,
    description: book.description,
    url: book.url,
    vendor: VENDOR,
    cover: book.fileDocument ? `io.cozy.files:${book.fileDocument._id}` : null
  }))
  const toSave = await hydrateAndFilter(documents, DOCTYPE, {
    keys: ['upc'],
    // a book already saved is saved again when its price or its cover changed
    shouldUpdate: (book, dbBook) =>
      book.price !== dbBook.price || book.cover !== dbBook.cover
  })
  log('info', `Saving ${toSave.length} books`)
  await addData(toSave, DOCTYPE, {
    sourceAccount: this.accountId,
    sourceAccountIdentifier: fields.login
  })
}

function authenticate(username, password) {
  return signin({
    url: `${baseUrl}/accounts/login/`,
    formSelector: 'form#member-login',
    formData: { username, password },
    validate: (statusCode, $) => {
      if ($('a.logout').length === 1) {
        return true
      } else {
        log('error', $('.alert-danger').text().trim())
        return false
      }
    }
  })
}

// Walks the pages of the catalogue, following the "next" link
async function fetchCatalogue(url) {
  const books = []
  let next = url
  while (next) {
    const $ = await request(next)
    const cards = scrape(
      $,
      {
        title: { sel: 'h3 a', attr: 'title' },
        url: { sel: 'h3 a', attr: 'href', parse: href => new URL(href, next).href },
        coverUrl: {
          sel: '.image_container img',
          attr: 'src',
          parse: src => new URL(src, next).href
        },
        price: {
          sel: '.price_color',
          parse: text => parseFloat(text.replace('£', ''))
        },
        rating: {
          sel: '.star-rating',
          attr: 'class',
          parse: cls => RATINGS[cls.replace('star-rating', '').trim()]
        },
        available: {
          sel: '.availability',
          parse: text => text === 'In stock'
        }
      },
      'article.product_pod'
    )
    for (const card of cards) {
      books.push({ ...card, ...(await fetchDetails(card.url)) })
    }
    const href = $('li.next a').attr('href')
    next = href ? new URL(href, next).href : null
  }
  return books
}

// The detail page of a book holds its UPC and its description
async function fetchDetails(url) {
  const html = await request({ uri: url, transform: body => body })
  const $ = cheerio.load(html)
  const facts = {}
  $('table.table-striped tr').each((i, row) => {
    facts[$(row).find('th').text().trim()] = $(row).find('td').text().trim()
  })
  return {
    upc: facts.UPC,
    description: $('#product_description').next('p').text().trim()
  }
}
