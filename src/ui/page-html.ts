/**
 * The page at /ui/: one HTML document with four sections (overview, repositories, jobs,
 * events). Script and style are separate files so the Content-Security-Policy can forbid
 * inline code; nothing is fetched from anywhere but regcache (nodes are often offline).
 */
export const PAGE_HTML = `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>regcache</title>
<link rel="stylesheet" href="/ui/app.css">
<script type="module" src="/ui/app.js"></script>
</head>
<body>
<header>
  <h1>regcache</h1>
  <nav aria-label="Sections">
    <a href="#overview">Overview</a> <a href="#repositories">Repositories</a> <a href="#jobs">Jobs</a> <a href="#events">Events</a>
  </nav>
  <p id="live" role="status" aria-live="polite">connecting…</p>
</header>
<main>
  <section id="overview" aria-labelledby="h-overview">
    <h2 id="h-overview">Overview</h2>
    <dl class="cards" id="summary"></dl>
    <h3>Upstreams</h3>
    <table id="upstreams"><thead><tr><th scope="col">Upstream</th><th scope="col">Health</th><th scope="col">Since</th><th scope="col">Requests (failed)</th><th scope="col">Last error</th><th scope="col">Rate limit left</th></tr></thead><tbody></tbody></table>
    <h3>Fills in flight</h3>
    <ul id="fills"></ul>
  </section>
  <section id="repositories" aria-labelledby="h-repositories">
    <h2 id="h-repositories">Repositories</h2>
    <form id="repo-search" role="search">
      <label for="q">Search repositories</label>
      <input id="q" name="q" type="search" autocomplete="off">
      <button type="submit">Search</button>
    </form>
    <table id="repos"><thead><tr><th scope="col">Repository</th><th scope="col">Tags</th><th scope="col">Size</th><th scope="col">Last pull</th><th scope="col">Last push</th></tr></thead><tbody></tbody></table>
    <button type="button" id="repos-more" hidden>More</button>
    <div id="repo-detail" hidden>
      <h3 id="repo-title" tabindex="-1"></h3>
      <table id="tags"><thead><tr><th scope="col">Tag</th><th scope="col">Digest</th><th scope="col">Platforms</th><th scope="col">Size</th><th scope="col">Last pull</th><th scope="col">Checked upstream</th><th scope="col">Last push</th><th scope="col">Pinned</th><th scope="col">Actions</th></tr></thead><tbody></tbody></table>
    </div>
  </section>
  <section id="jobs" aria-labelledby="h-jobs">
    <h2 id="h-jobs">Jobs</h2>
    <table id="jobs-table"><thead><tr><th scope="col">Job</th><th scope="col">Kind</th><th scope="col">Status</th><th scope="col">Next run</th><th scope="col">Last run</th><th scope="col">Actions</th></tr></thead><tbody></tbody></table>
    <div id="job-detail" hidden><h3 id="job-title" tabindex="-1"></h3><ol id="job-history"></ol></div>
  </section>
  <section id="events" aria-labelledby="h-events">
    <h2 id="h-events">Events</h2>
    <ol id="events-list" reversed></ol>
  </section>
</main>
</body>
</html>
`;
