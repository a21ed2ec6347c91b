/**
 * "Paper Lantern Books", the bookshop the paper-lantern-books konnector scrapes: a members area behind a login
 * form, a catalogue of product cards over pages linked by "next", one detail page per book (its UPC and
 * description), and cover images (JPEG, one PNG). Built like the shops of books.toscrape.com. Deterministic data.
 */
import { createHash, randomBytes } from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { cookieValue, escapeHtml, readForm, redirect, sendHtml, serve, VendorError, type RunningSite } from '../vendor-kit.ts';

export interface Book {
  upc: string;
  title: string;
  /** In pounds, shown as "£51.77". */
  price: number;
  rating: 1 | 2 | 3 | 4 | 5;
  inStock: boolean;
  description: string;
  cover: 'jpg' | 'png';
}

export interface BookshopSite extends RunningSite {
  credentials: { login: string; password: string };
  books: Book[];
  /** The bytes served for a book's cover. */
  coverOf(upc: string): Buffer;
  /** Changes a book's price, as the shop does between two runs. */
  setPrice(upc: string, price: number): void;
  /** Log-in attempts, successful or not. */
  readonly logins: number;
}

const CREDENTIALS = Object.freeze({ login: 'jane.reader', password: 'lantern-2024' });
const PAGE_SIZE = 4;
const SESSION_COOKIE = 'plb_member';
const RATINGS = ['One', 'Two', 'Three', 'Four', 'Five'] as const;

const BOOKS: readonly Book[] = [
  { upc: 'a897fe39b1053632', title: 'A Light in the Attic', price: 51.77, rating: 3, inStock: true, cover: 'jpg', description: 'Poems for the young at heart.' },
  { upc: '90fa61229261140a', title: 'Tipping the Velvet', price: 53.74, rating: 1, inStock: true, cover: 'jpg', description: 'A Victorian music-hall romance.' },
  { upc: '6957f44c3847a760', title: 'Soumission', price: 50.1, rating: 1, inStock: false, cover: 'jpg', description: 'A novel of politics & ennui.' },
  { upc: 'e00eb4fd7b871a48', title: 'Sharp Objects', price: 47.82, rating: 4, inStock: true, cover: 'png', description: 'A reporter returns to her hometown.' },
  { upc: '4165285e1663650f', title: 'Sapiens: A Brief History of Humankind', price: 54.23, rating: 5, inStock: true, cover: 'jpg', description: 'From foragers to "gods".' },
  { upc: 'f77dbf2323deb740', title: 'The Requiem Red', price: 22.65, rating: 1, inStock: true, cover: 'jpg', description: 'A thriller <in> red.' },
  { upc: '2597b5a345f45e1b', title: 'The Dirty Little Secrets of Getting Your Dream Job', price: 33.34, rating: 4, inStock: true, cover: 'jpg', description: 'Advice, plainly given.' },
];

function slugOf(book: Book): string {
  return `${book.title.toLowerCase().replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '')}_${book.upc.slice(0, 6)}`;
}

/** A small image whose first bytes are a real JPEG or PNG signature, and whose rest depends on the book. */
function coverBytes(book: Book): Buffer {
  const body = createHash('sha256').update(book.upc).digest();
  return book.cover === 'png'
    ? Buffer.concat([Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]), Buffer.from('IHDR'), body, Buffer.from('IEND')])
    : Buffer.concat([Buffer.from([0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10]), Buffer.from('JFIF\0'), body, Buffer.from([0xff, 0xd9])]);
}

function page(title: string, body: string): string {
  return `<!DOCTYPE html>
<html lang="en-gb">
<head><meta charset="utf-8"><title>${escapeHtml(title)} | Paper Lantern Books</title></head>
<body>
<header class="header"><a href="/">Paper Lantern Books</a></header>
<div class="page_inner">
${body}
</div>
</body>
</html>
`;
}

export async function startBookshopSite(opts: { port?: number } = {}): Promise<BookshopSite> {
  const books = BOOKS.map((book) => ({ ...book }));
  const sessions = new Set<string>();
  let logins = 0;

  function loginPage(res: ServerResponse, status: number, error?: string) {
    sendHtml(res, status, page('Members login', `<h1>Members area</h1>
${error ? `<div class="alert alert-danger">${escapeHtml(error)}</div>\n` : ''}<form id="member-login" method="post" action="/accounts/login/">
  <input type="hidden" name="next" value="/catalogue/page-1.html">
  <label>Username <input type="text" name="username"></label>
  <label>Password <input type="password" name="password"></label>
  <button type="submit">Log in</button>
</form>`));
  }

  function card(book: Book): string {
    return `<li><article class="product_pod">
  <div class="image_container"><a href="/catalogue/${slugOf(book)}/index.html"><img src="/media/cache/${book.upc}.${book.cover}" alt="${escapeHtml(book.title)}" class="thumbnail"></a></div>
  <p class="star-rating ${RATINGS[book.rating - 1]}"></p>
  <h3><a href="/catalogue/${slugOf(book)}/index.html" title="${escapeHtml(book.title)}">${escapeHtml(book.title.length > 24 ? `${book.title.slice(0, 21)}...` : book.title)}</a></h3>
  <div class="product_price">
    <p class="price_color">£${book.price.toFixed(2)}</p>
    <p class="${book.inStock ? 'instock' : 'outofstock'} availability">${book.inStock ? 'In stock' : 'Out of stock'}</p>
  </div>
</article></li>`;
  }

  function catalogue(res: ServerResponse, number: number) {
    const pages = Math.ceil(books.length / PAGE_SIZE);
    if (number < 1 || number > pages) throw new VendorError(404, `there is no catalogue page ${number}`);
    const shown = books.slice((number - 1) * PAGE_SIZE, number * PAGE_SIZE);
    sendHtml(res, 200, page(`Catalogue, page ${number}`, `<nav><a href="/accounts/logout/" class="logout">Log out</a></nav>
<ol class="row">
${shown.map(card).join('\n')}
</ol>
<ul class="pager">
  <li class="current">Page ${number} of ${pages}</li>
${number < pages ? `  <li class="next"><a href="page-${number + 1}.html">next</a></li>\n` : ''}</ul>`));
  }

  function detail(res: ServerResponse, book: Book) {
    sendHtml(res, 200, page(book.title, `<article class="product_page">
<h1>${escapeHtml(book.title)}</h1>
<div id="product_description"><h2>Product Description</h2></div>
<p>${escapeHtml(book.description)}</p>
<table class="table table-striped">
  <tr><th>UPC</th><td>${book.upc}</td></tr>
  <tr><th>Product Type</th><td>Books</td></tr>
  <tr><th>Price (incl. tax)</th><td>£${book.price.toFixed(2)}</td></tr>
  <tr><th>Availability</th><td>${book.inStock ? 'In stock' : 'Out of stock'}</td></tr>
</table>
</article>`));
  }

  async function handle(req: IncomingMessage, res: ServerResponse, url: URL) {
    const { pathname } = url;
    const method = req.method ?? 'GET';
    const member = sessions.has(cookieValue(req, SESSION_COOKIE) ?? '');

    if (pathname === '/accounts/login/' && method === 'POST') {
      logins += 1;
      const form = await readForm(req);
      if (form.username !== CREDENTIALS.login || form.password !== CREDENTIALS.password) {
        return loginPage(res, 200, 'Please enter a correct username and password.');
      }
      const id = randomBytes(16).toString('hex');
      sessions.add(id);
      const next = form.next?.startsWith('/catalogue/') ? form.next : '/catalogue/page-1.html';
      return redirect(res, next, { 'Set-Cookie': `${SESSION_COOKIE}=${id}; Path=/; HttpOnly` });
    }
    if (method !== 'GET') throw new VendorError(405, `${method} is not allowed on ${pathname}`);
    if (pathname === '/accounts/login/') return loginPage(res, 200);

    const cover = /^\/media\/cache\/([0-9a-f]{16})\.(jpg|png)$/.exec(pathname);
    const coverBook = cover && books.find((b) => b.upc === cover[1] && b.cover === cover[2]);
    if (coverBook) {
      res.writeHead(200, { 'Content-Type': coverBook.cover === 'png' ? 'image/png' : 'image/jpeg' });
      return res.end(coverBytes(coverBook));
    }

    if (!member) return redirect(res, '/accounts/login/');
    const list = /^\/catalogue\/page-(\d+)\.html$/.exec(pathname);
    if (list) return catalogue(res, Number(list[1]));
    const book = books.find((b) => pathname === `/catalogue/${slugOf(b)}/index.html`);
    if (book) return detail(res, book);
    throw new VendorError(404, `${pathname} does not exist`);
  }

  const site = await serve(handle, opts.port);
  return {
    ...site,
    credentials: { ...CREDENTIALS },
    books,
    coverOf(upc) {
      const book = books.find((b) => b.upc === upc);
      if (!book) throw new Error(`no book ${upc}`);
      return coverBytes(book);
    },
    setPrice(upc, price) {
      const book = books.find((b) => b.upc === upc);
      if (!book) throw new Error(`no book ${upc}`);
      book.price = price;
    },
    get logins() {
      return logins;
    },
  };
}
