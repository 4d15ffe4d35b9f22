"""The inline style sheet and script of the leaderboard page (no network assets: the page opens from disk).

The style follows the reader's light or dark scheme and narrows to phone width; the script switches dataset tabs
and sorts a table by a clicked header.
"""

PAGE_CSS = """
:root{color-scheme:light dark;--fg:#222;--bg:#fff;--muted:#666;--faint:#888;--line:#ddd;--head:#f4f4f6;
--tab:#eef0f3;--tab-line:#bbb;--bad:#9b1c1c;--bad-bg:#fde2e1;--bad-line:#f5a3a0;--bad-row:#fff6f6;
--info:#1a3d7c;--info-bg:#e8f0fe;--info-line:#a8c0f0;--pub:#6b6b6b;--pub-bg:#f6f6f6;--warn:#8a5a00;
--link:#0b57d0;--code-bg:#f3f3f3}
@media (prefers-color-scheme:dark){:root{--fg:#e6e6e6;--bg:#15171a;--muted:#a9adb3;--faint:#8d9299;--line:#3a3e44;
--head:#22262b;--tab:#23272d;--tab-line:#4a4f57;--bad:#ff9c94;--bad-bg:#4a1f1d;--bad-line:#8c3a35;
--bad-row:#2a1d1e;--info:#a9c6ff;--info-bg:#1d2a44;--info-line:#3d5689;--pub:#a0a4aa;--pub-bg:#1d2024;
--warn:#e6b35c;--link:#8ab4f8;--code-bg:#1f2226}}
*{box-sizing:border-box}
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:1.5rem auto;padding:0 1rem;
color:var(--fg);background:var(--bg);max-width:1400px;line-height:1.4}
a{color:var(--link)}h1{font-size:1.4rem}h2{font-size:1.15rem;margin-top:1.6rem}
.downloads a{margin-right:.8rem}
.tabs{display:flex;flex-wrap:wrap;gap:.2rem}
.tabs button{border:1px solid var(--tab-line);background:var(--tab);color:var(--fg);padding:.35rem .9rem;
cursor:pointer;border-radius:4px 4px 0 0;font:inherit}
.tabs button[aria-selected=true]{background:var(--bg);border-bottom-color:var(--bg);font-weight:600}
.scroll{overflow-x:auto;-webkit-overflow-scrolling:touch;max-width:100%}
table{border-collapse:collapse;margin:.6rem 0;font-size:.9rem}
th,td{border:1px solid var(--line);padding:.3rem .55rem;text-align:right;vertical-align:top}
th{background:var(--head)}th[data-sortable]{cursor:pointer;user-select:none}th.name,td.name{text-align:left}
th.group{text-align:center;font-weight:600;cursor:default}
table.board td.name{position:sticky;left:0;background:var(--bg);z-index:1}
td.best .v{font-weight:700}td.second .v{text-decoration:underline}
.ci{color:var(--muted);font-size:.78rem;white-space:nowrap}.n{color:var(--faint);font-size:.72rem;display:block}
.fail{color:var(--bad);font-size:.72rem;display:block}.grp{color:var(--muted);font-size:.68rem;margin-left:.15rem}
.pinned{display:inline-block;margin-left:.4rem;padding:0 .35rem;background:var(--info-bg);color:var(--info);
border:1px solid var(--info-line);border-radius:3px;font-size:.72rem;font-weight:400}
.groups{font-size:.82rem}.groups li{margin:.15rem 0}
.uncal{display:inline-block;margin-left:.4rem;padding:0 .35rem;background:var(--bad-bg);color:var(--bad);
border:1px solid var(--bad-line);border-radius:3px;font-size:.72rem;font-weight:400}
tr.uncalibrated td{background:var(--bad-row)}
tr.kind-ceiling td,tr.kind-baseline td{font-style:italic;color:var(--muted)}
table.breakdown{display:inline-table;margin:.3rem 1rem .3rem 0;font-size:.8rem}
figure.confusion{display:inline-block;margin:.3rem 1rem 0 0}
svg.confusion{background:#fff;color:#000;border-radius:4px;max-width:100%;height:auto}
table.published{margin-top:.6rem}table.published td,table.published th{color:var(--pub);background:var(--pub-bg)}
.unchecked{font-size:.7rem;color:var(--warn);margin-left:.3rem}.pubonly{font-style:italic}
.kind{display:inline-block;margin-left:.4rem;padding:0 .35rem;background:var(--info-bg);color:var(--info);
border-radius:3px;font-size:.75rem;font-style:normal}
.prov th,.gloss th{text-align:left}
.prov td,.gloss td{text-align:left;font-family:ui-monospace,monospace;font-size:.78rem}
pre{margin:0;white-space:pre-wrap;word-break:break-all;max-width:60rem}
details.repro pre{background:var(--code-bg);padding:.4rem;border-radius:3px;min-width:16rem}
.empty-why{color:var(--faint);font-size:.75rem}
.strip{display:flex;flex-wrap:wrap;align-items:flex-start;gap:.5rem;margin:.5rem 0;padding:.4rem 0;
border-top:1px solid var(--line)}
.strip-name{flex:0 0 9rem;font-weight:600;word-break:break-word}
.clip summary{list-style:none;cursor:pointer}.clip summary::-webkit-details-marker{display:none}
.clip img{display:block;width:192px;max-width:40vw;height:auto;border-radius:3px;border:1px solid var(--line)}
.clip small{display:block;color:var(--faint);font-size:.7rem;max-width:192px;overflow-wrap:anywhere}
.clip.missing{width:192px;max-width:40vw;min-height:6rem;border:1px dashed var(--line);border-radius:3px;
padding:.4rem;display:flex;flex-direction:column;justify-content:center;text-align:center}
.na{color:var(--bad);font-size:.8rem}
.pair{display:flex;flex-wrap:wrap;gap:.5rem;margin:.4rem 0}.pair figure{margin:0}
.pair video{width:320px;max-width:100%;background:#000}
.pair figcaption{font-size:.75rem;color:var(--muted)}
footer{margin-top:2rem;border-top:1px solid var(--line);padding-top:.6rem;font-size:.82rem;color:var(--muted)}
@media (max-width:700px){body{margin:.6rem auto;padding:0 .5rem;font-size:.92rem}h1{font-size:1.2rem}
table{font-size:.8rem}th,td{padding:.2rem .35rem}.strip-name{flex-basis:100%}.pair video{width:100%}}
"""

# Sorting: the first click on a metric header puts the best value first (direction from data-hib), the next click
# reverses; rows without a value always go last. The method column sorts alphabetically. A header's column is its
# data-col (the grouped header has two rows, so cellIndex is not the body column).
PAGE_JS = """
function showTab(id){document.querySelectorAll('section.dataset').forEach(function(s){s.hidden=(s.id!==id);});
document.querySelectorAll('.tabs button').forEach(function(b){var on=b.dataset.target===id;
b.classList.toggle('active',on);b.setAttribute('aria-selected',on?'true':'false');b.tabIndex=on?0:-1;});}
function sortBy(th){var table=th.closest('table'),tbody=table.tBodies[0],col=parseInt(th.dataset.col,10);
var hib=th.dataset.hib,asc;var state=th.dataset.state==='1'?'0':'1';
table.querySelectorAll('th').forEach(function(h){h.dataset.state='';});th.dataset.state=state;
if(hib==='true'){asc=state!=='1';}else if(hib==='false'){asc=state==='1';}else{asc=state==='1';}
var rows=Array.prototype.slice.call(tbody.rows);
rows.sort(function(a,b){var x=a.cells[col].dataset.sort,y=b.cells[col].dataset.sort;
if(hib===undefined){return asc?x.localeCompare(y):y.localeCompare(x);}
var ex=(x===''),ey=(y==='');if(ex||ey){return ex-ey;}x=parseFloat(x);y=parseFloat(y);return asc?x-y:y-x;});
rows.forEach(function(r){tbody.appendChild(r);});}
document.addEventListener('DOMContentLoaded',function(){
document.querySelectorAll('th[data-sortable]').forEach(function(th){
th.addEventListener('click',function(){sortBy(th);});});
var first=document.querySelector('.tabs button');if(first){showTab(first.dataset.target);}
document.querySelectorAll('.tabs button').forEach(function(b){
b.addEventListener('click',function(){showTab(b.dataset.target);});});});
"""
