// The status page: one HTML document, no external assets. Numbers are
// rendered here, and so are the sparklines of the shared history
// (common/history.h); the script only re-fetches the page every 2 s, swaps
// the tables in, and turns cumulative counts (data-k/data-v) into rates (and
// into sparklines where there is no history yet, and for the workers).
#include <algorithm>
#include <cinttypes>
#include <cstdio>
#include <ctime>

#include "worker/html_escape.h"
#include "worker/status_render.h"

namespace pasture::worker {
namespace {

std::string esc(std::string_view s) {
  std::string o;
  append_html_escaped(o, s);
  return o;
}

std::string num(uint64_t v) {
  char b[32];
  if (v >= 10000000000ull)
    snprintf(b, sizeof b, "%.1fG", (double)v / 1e9);
  else if (v >= 10000000)
    snprintf(b, sizeof b, "%.1fM", (double)v / 1e6);
  else if (v >= 100000)
    snprintf(b, sizeof b, "%.1fk", (double)v / 1e3);
  else
    snprintf(b, sizeof b, "%" PRIu64, v);
  return b;
}

std::string bytes(uint64_t v) {
  char b[32];
  if (v >= (1ull << 30))
    snprintf(b, sizeof b, "%.1f GiB", (double)v / (1ull << 30));
  else if (v >= (1ull << 20))
    snprintf(b, sizeof b, "%.1f MiB", (double)v / (1ull << 20));
  else if (v >= 1024)
    snprintf(b, sizeof b, "%.1f KiB", (double)v / 1024);
  else
    snprintf(b, sizeof b, "%" PRIu64 " B", v);
  return b;
}

std::string ms(double v) {
  char b[32];
  if (v <= 0)
    return "–";
  else if (v < 10)
    snprintf(b, sizeof b, "%.2f ms", v);
  else if (v < 1000)
    snprintf(b, sizeof b, "%.0f ms", v);
  else
    snprintf(b, sizeof b, "%.1f s", v / 1000);
  return b;
}

std::string age(uint64_t seconds) {
  char b[48];
  if (seconds < 120)
    snprintf(b, sizeof b, "%" PRIu64 " s", seconds);
  else if (seconds < 7200)
    snprintf(b, sizeof b, "%" PRIu64 " min", seconds / 60);
  else if (seconds < 172800)
    snprintf(b, sizeof b, "%" PRIu64 " h", seconds / 3600);
  else
    snprintf(b, sizeof b, "%" PRIu64 " d", seconds / 86400);
  return b;
}

// A sparkline of the shared history (common/history.h): requests per
// second over the last minutes, 5xx in red on the same scale. Drawn here, so
// the page shows the minutes before it was opened.
std::string history_spark(const HistorySeries& h, uint32_t interval_ms) {
  size_t n = h.requests.size();
  double secs = interval_ms ? interval_ms / 1000.0 : 1;
  uint32_t top = 1;
  for (uint32_t v : h.requests) top = std::max(top, v);
  auto line = [&](const std::vector<uint32_t>& v, const char* cls) {
    std::string pts;
    char b[32];
    for (size_t i = 0; i < n; i++) {
      snprintf(b, sizeof b, "%s%.1f,%.1f", i ? " " : "", n > 1 ? (double)i * 120 / (double)(n - 1) : 0.0,
               19 - (double)v[i] / top * 18);
      pts += b;
    }
    return std::string("<polyline") + cls + " points=\"" + pts + "\"/>";
  };
  char title[96];
  snprintf(title, sizeof title, "<title>last %zu samples, one per %g s; peak %.1f/s</title>", n, secs,
           (double)top / secs);
  return std::string("<svg class=\"spark hist\" width=120 height=20 viewBox=\"0 0 120 20\">") + title +
         line(h.requests, "") +
         (std::any_of(h.errors.begin(), h.errors.end(), [](uint32_t e) { return e > 0; }) ? line(h.errors, " class=err")
                                                                                       : std::string()) +
         "</svg>";
}

// A rate cell and a sparkline the script fills from a cumulative count.
std::string rate_cells(const std::string& key, uint64_t v) {
  return "<td class=rate data-k=\"" + esc(key) + "\" data-v=\"" + std::to_string(v) +
         "\">–</td><td><svg class=spark data-s=\"" + esc(key) +
         "\" width=120 height=20 viewBox=\"0 0 120 20\"></svg></td>";
}

// The same with the shared history's sparkline once it has two samples.
std::string rate_cells(const std::string& key, uint64_t v, const HistorySeries& h, uint32_t interval_ms) {
  if (h.requests.size() < 2) return rate_cells(key, v);
  return "<td class=rate data-k=\"" + esc(key) + "\" data-v=\"" + std::to_string(v) + "\">–</td><td>" +
         history_spark(h, interval_ms) + "</td>";
}

// The health record: the last probe and the rise/fall progress.
std::string check_cell(const ServerSnap& v) {
  if (!v.checked) return "<td>–</td>";
  if (!*v.check) return "<td>pending</td>";
  bool ok = std::string_view(v.check) == "ok";
  std::string text = std::string(v.check) + " " +
                     (v.check_code ? std::to_string(v.check_code) : std::string(v.check_reason));
  text += " · " + std::to_string(v.check_duration_ms) + " ms";
  bool down = std::string_view(v.state) == "down";
  if (down && v.check_ok) text += " · rise " + std::to_string(v.check_ok) + "/" + std::to_string(v.rise);
  if (!down && v.check_fail) text += " · fall " + std::to_string(v.check_fail) + "/" + std::to_string(v.fall);
  return std::string("<td data-check=\"") + v.check + "\"" + (ok ? "" : " class=bad") + " title=\"" +
         v.check_reason + "; " + std::to_string(v.check_ok) + " ok / " + std::to_string(v.check_fail) +
         " failed in a row (rise " + std::to_string(v.rise) + ", fall " + std::to_string(v.fall) + ")\">" +
         esc(text) + "</td>";
}

// Up->down transitions and the downtime; the last change in its title.
std::string downs_cell(const ServerSnap& v) {
  return "<td data-downs=\"" + std::to_string(v.transitions) + "\" title=\"last change " + age(v.last_change_s) +
         " ago\">" + std::to_string(v.transitions) + (v.transitions ? " · " + age(v.downtime_s) : std::string()) +
         "</td>";
}

constexpr const char* kStyle = R"(
body{font:14px/1.4 system-ui,sans-serif;margin:0;background:#f6f7f9;color:#1d2330}
header{background:#1d2330;color:#fff;padding:10px 18px;display:flex;gap:22px;flex-wrap:wrap;align-items:baseline}
header b{font-size:17px}main{padding:8px 18px}
h2{font-size:15px;margin:18px 0 6px}h2 small{font-weight:normal;color:#5b6475}
table{border-collapse:collapse;background:#fff;box-shadow:0 1px 2px #0002;min-width:60%}
th,td{padding:4px 9px;text-align:right;border-bottom:1px solid #e6e8ec;white-space:nowrap}
th{background:#eef0f4;font-weight:600;font-size:12px;color:#3b4456}
td:first-child,th:first-child{text-align:left}
.st{display:inline-block;padding:1px 8px;border-radius:9px;font-size:12px;color:#fff}
.st-up{background:#1f9d55}.st-down{background:#d0352b}.st-failing{background:#e08a00}.st-disabled{background:#8a93a3}.st-drain{background:#2b6cb0}.st-maint{background:#6b46c1}
.bad{color:#d0352b;font-weight:600}.spark polyline{fill:none;stroke:#3867d6;stroke-width:1.5}.spark polyline.err{stroke:#d0352b}
.tot{display:flex;gap:26px;flex-wrap:wrap;margin:6px 0}.tot div span{display:block;font-size:12px;color:#5b6475}
)";

constexpr const char* kScript = R"(
(function(){
var hist={},prev={},last=Date.now();
function tick(){
 var now=Date.now(),dt=(now-last)/1000;last=now;
 document.querySelectorAll('td.rate').forEach(function(td){
  var k=td.dataset.k,v=+td.dataset.v,p=prev[k];prev[k]=v;
  if(p===undefined||dt<=0)return;
  var r=Math.max(0,(v-p)/dt);(hist[k]=hist[k]||[]).push(r);if(hist[k].length>150)hist[k].shift();
  td.textContent=r<10?r.toFixed(1)+'/s':Math.round(r)+'/s';});
 document.querySelectorAll('svg.spark').forEach(function(s){
  var h=hist[s.dataset.s];if(!h||h.length<2)return;
  var m=Math.max.apply(null,h)||1,pts=h.map(function(r,i){return(i*120/149).toFixed(1)+','+(19-r/m*18).toFixed(1)});
  s.innerHTML='<polyline points="'+pts.join(' ')+'"/>';});
}
function poll(){
 fetch(location.href,{cache:'no-store'}).then(function(r){return r.text()}).then(function(t){
  var d=new DOMParser().parseFromString(t,'text/html');
  ['hdr','main'].forEach(function(id){var n=d.getElementById(id);if(n)document.getElementById(id).innerHTML=n.innerHTML});
  tick();}).catch(function(){}).finally(function(){setTimeout(poll,2000)});
}
tick();setTimeout(poll,2000);
})();
)";

}  // namespace

std::string render_html(const Snapshot& s, std::string_view base) {
  std::string o;
  o.reserve(16384);
  o += "<!doctype html><html lang=en><head><meta charset=utf-8><meta name=viewport "
       "content=\"width=device-width\"><title>pasture status</title><style>";
  o += kStyle;
  o += "</style></head><body><header id=hdr><b>pasture</b><span>generation " + std::to_string(s.generation) +
       "</span><span>" + std::to_string(s.workers.size()) + " workers</span><span>counting for " +
       age(s.now > s.counters_since ? s.now - s.counters_since : 0) + "</span><span>" +
       (s.draining ? "draining" : "ready") + "</span><span>answered by pid " + std::to_string(s.self_pid) +
       "</span><span><a style=\"color:#9cc3ff\" href=\"" + esc(base) + "?format=json\">json</a> · <a "
       "style=\"color:#9cc3ff\" href=\"" + esc(base) + "metrics\">metrics</a></span></header><main id=main>";

  uint64_t errors = s.responses[4] + s.responses[5];
  o += "<div class=tot><div><span>requests</span>" + num(s.requests) + "</div><div><span>rate</span>"
       "<table style=\"min-width:0;box-shadow:none\"><tr>" + rate_cells("all", s.requests, s.history.total, s.history.interval_ms) +
       "</tr></table></div><div><span>connections</span>" + num(s.connections) +
       "</div><div><span>2xx / 3xx / 4xx</span>" + num(s.responses[1]) + " / " + num(s.responses[2]) + " / " +
       num(s.responses[3]) + "</div><div><span>5xx + aborted</span><b" + (errors ? " class=bad" : "") + ">" +
       num(errors) + "</b></div><div><span>in / out</span>" + bytes(s.bytes_in) + " / " + bytes(s.bytes_out) +
       "</div></div>";

  for (const PoolSnap& p : s.pools) {
    o += "<h2 data-pool=\"" + esc(p.name) + "\">" + esc(p.name) + " <small>" + esc(p.method) + " · " +
         std::to_string(p.up) + " of " + std::to_string(p.servers.size()) + " up · p50 " +
         ms(p.total.quantile_ms(0.5)) + " · p99 " + ms(p.total.quantile_ms(0.99)) +
         (p.no_server ? " · <span class=bad>" + num(p.no_server) + " without a server</span>" : "") +
         (p.budget_refusals ? " · " + num(p.budget_refusals) + " retries refused by the budget" : "") +
         "</small></h2><table><tr><th>server</th><th>state</th><th>weight</th><th>active</th><th>selected</th>"
         "<th>rate</th><th>last minutes</th><th>2xx</th><th>3xx</th><th>4xx</th><th>5xx</th>"
         "<th>errors</th><th>retries</th><th>p50</th><th>p99</th><th>connect p99</th><th>check</th>"
         "<th>downs</th></tr>";
    for (const ServerSnap& v : p.servers) {
      uint64_t errs = v.connect_errors + v.response_errors + v.timeouts;
      std::string weight = std::to_string(v.weight);
      if (v.effective_weight != v.weight) weight = std::to_string(v.effective_weight) + " / " + weight;
      o += "<tr data-server=\"" + esc(v.name) + "\"><td>" + esc(v.name) + (v.backup ? " <small>backup</small>" : "") +
           "</td><td><span class=\"st st-" + std::string(v.state) + "\">" + v.state + "</span>" +
           (std::string_view(v.admin) != "ready"
                ? " <span class=\"st st-" + std::string(v.admin) + "\">" + v.admin + "</span>"
                : "") +
           "</td><td>" + weight +
           "</td><td>" + std::to_string(v.active > 0 ? v.active : 0) + "</td><td>" + num(v.selected) + "</td>" +
           rate_cells(p.name + "/" + v.name, v.selected, v.history, s.history.interval_ms) + "<td>" +
           num(v.responses[1]) + "</td><td>" +
           num(v.responses[2]) + "</td><td>" + num(v.responses[3]) + "</td><td" +
           (v.responses[4] ? " class=bad" : "") + ">" + num(v.responses[4]) + "</td><td" +
           (errs ? " class=bad" : "") + " title=\"connect " + std::to_string(v.connect_errors) + ", response " +
           std::to_string(v.response_errors) + ", timeouts " + std::to_string(v.timeouts) + "\">" + num(errs) +
           "</td><td>" + num(v.retries) + "</td><td>" + ms(v.total.quantile_ms(0.5)) + "</td><td>" +
           ms(v.total.quantile_ms(0.99)) + "</td><td>" + ms(v.connect.quantile_ms(0.99)) + "</td>" + check_cell(v) +
           downs_cell(v) + "</tr>";
    }
    o += "</table>";
  }

  o += "<h2>workers</h2><table><tr><th>slot</th><th>pid</th><th>generation</th><th>respawns</th>"
       "<th>connections</th><th>requests</th><th>rate</th><th>last minutes</th><th>heartbeat</th></tr>";
  for (const WorkerSnap& w : s.workers) {
    o += "<tr data-worker=\"" + std::to_string(w.slot) + "\"><td>" + std::to_string(w.slot) + "</td><td>" +
         std::to_string(w.pid) + "</td><td>" + std::to_string(w.generation) + "</td><td" +
         (w.respawns ? " class=bad" : "") + ">" + std::to_string(w.respawns) + "</td><td>" +
         std::to_string(w.connections) + "</td><td>" + num(w.requests) + "</td>" +
         rate_cells("worker" + std::to_string(w.slot) + "/" + std::to_string(w.pid), w.requests) + "<td>" +
         std::to_string(w.heartbeat_age_ms) + " ms ago</td></tr>";
  }
  o += "</table></main><script>";
  o += kScript;
  o += "</script></body></html>\n";
  return o;
}

}  // namespace pasture::worker
