/** The page's stylesheet: readable on a phone (tables scroll sideways), visible focus, light and dark. */
export const PAGE_CSS = `:root { color-scheme: light dark; --ok: #1a7f37; --bad: #cf222e; --muted: #6e7781; font: 15px/1.45 system-ui, sans-serif; }
body { margin: 0 auto; max-width: 72rem; padding: 0 1rem 2rem; }
header { display: flex; flex-wrap: wrap; gap: .5rem 1.5rem; align-items: baseline; }
h1 { font-size: 1.4rem; margin: .8rem 0; }
nav a { margin-right: .6rem; }
#live { color: var(--muted); margin: 0; }
section { margin-top: 1.5rem; overflow-x: auto; }
.cards { display: grid; grid-template-columns: repeat(auto-fit, minmax(9rem, 1fr)); gap: .6rem; }
.cards div { border: 1px solid var(--muted); border-radius: .4rem; padding: .5rem .7rem; }
.cards dt { color: var(--muted); font-size: .85rem; }
.cards dd { margin: 0; font-size: 1.2rem; font-variant-numeric: tabular-nums; }
table { border-collapse: collapse; width: 100%; }
th, td { text-align: left; padding: .3rem .5rem; border-bottom: 1px solid color-mix(in srgb, var(--muted) 40%, transparent); vertical-align: top; }
td.num { text-align: right; font-variant-numeric: tabular-nums; }
code { font-size: .85em; word-break: break-all; }
.up { color: var(--ok); font-weight: 600; }
.down, .FAIL { color: var(--bad); font-weight: 600; }
.SUCCESS { color: var(--ok); font-weight: 600; }
button { font: inherit; padding: .25rem .6rem; margin: 0 .2rem .2rem 0; }
button.link { border: 0; background: none; color: LinkText; text-decoration: underline; padding: 0; cursor: pointer; }
:focus-visible { outline: 3px solid Highlight; outline-offset: 2px; }
input[type=search] { font: inherit; padding: .25rem; min-width: 12rem; }
progress { width: 8rem; }
#events-list { padding-left: 1.5rem; }
@media (max-width: 40rem) { th, td { padding: .25rem .3rem; } }
`;
