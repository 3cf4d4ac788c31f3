#include "eval/html_report.h"

#include <algorithm>
#include <cmath>
#include <cstdio>

#include "eval/evaluation.h"

namespace medlab {
namespace {

using ordered_json = nlohmann::ordered_json;

constexpr const char* kStyle = R"(
body{font-family:system-ui,sans-serif;margin:2em auto;max-width:72em;padding:0 1em;color:#222}
h1{margin-bottom:.2em}h2{margin-top:1.6em;border-bottom:1px solid #ccc}
.notice{background:#fff4e5;border:1px solid #f0a040;padding:.5em .8em;font-weight:bold}
.warning{background:#fdecea;border:1px solid #d9534f;padding:.5em .8em}
table{border-collapse:collapse;margin:.6em 0}th,td{border:1px solid #ccc;padding:.25em .6em;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums}
.PASS{color:#0a7a2f;font-weight:bold}.FAIL{color:#c62828;font-weight:bold}
.charts{display:flex;flex-wrap:wrap;gap:1em}.charts figure{margin:0}
svg .bar{fill:#4a78b5}svg .whisker{stroke:#222;stroke-width:1.5}svg .grid{stroke:#ddd}
svg text{font-size:11px;fill:#333}svg .title{font-size:13px;font-weight:bold}
td.text{max-width:30em;white-space:pre-wrap;word-break:break-word}
footer{margin-top:2em;color:#666;font-size:.9em}
)";

std::string cell(std::string_view text, const char* cls = nullptr) {
  return cls ? "<td class=\"" + std::string(cls) + "\">" + html_escape(text) + "</td>"
             : "<td>" + html_escape(text) + "</td>";
}

std::string json_text(const ordered_json& value) { return value.is_string() ? value.get<std::string>() : value.dump(); }

std::string interval(const ordered_json& metric) {
  const auto ci = metric.find("ci");
  if (ci == metric.end() || !ci->is_array()) return "";
  return "[" + score_text((*ci)[0]) + ", " + score_text((*ci)[1]) + "]";
}

// At most `limit` characters (UTF-8 code points), with an ellipsis when cut.
std::string shortened(const std::string& text, size_t limit) {
  size_t chars = 0;
  for (size_t i = 0; i < text.size(); ++i)
    if ((static_cast<unsigned char>(text[i]) & 0xC0) != 0x80 && ++chars > limit) return text.substr(0, i) + "\u2026";
  return text;
}

// A round axis top above `top`: 1, 2 or 5 times a power of ten.
double axis_top(double top) {
  if (!(top > 0)) return 1;
  const double power = std::pow(10, std::floor(std::log10(top)));
  for (double step : {1.0, 2.0, 5.0, 10.0})
    if (step * power >= top) return step * power;
  return 10 * power;
}

std::string number(double x) {
  char text[32];
  std::snprintf(text, sizeof text, "%.1f", x);
  return text;
}

struct Bar {
  std::string label;
  const ordered_json* metric;  // {"value", "ci"?}
};

// A bar chart with CI whiskers; a bar whose value is null is left out and labelled n/a.
std::string bar_chart(const std::string& title, const std::vector<Bar>& bars) {
  const double width = std::max(300.0, 70.0 * static_cast<double>(bars.size()) + 60), height = 230;
  const double left = 44, right = 12, top = 30, bottom = 44;
  const double plot_w = width - left - right, plot_h = height - top - bottom;
  double highest = 0;
  for (const Bar& b : bars) {
    if ((*b.metric)["value"].is_number()) highest = std::max(highest, (*b.metric)["value"].get<double>());
    if (const auto ci = b.metric->find("ci"); ci != b.metric->end() && ci->is_array())
      highest = std::max(highest, (*ci)[1].get<double>());
  }
  const double y_max = axis_top(highest);
  auto y = [&](double v) { return top + plot_h * (1 - std::clamp(v, 0.0, y_max) / y_max); };
  std::string svg = "<svg role=\"img\" width=\"" + number(width) + "\" height=\"" + number(height) +
                    "\" viewBox=\"0 0 " + number(width) + " " + number(height) + "\" aria-label=\"" +
                    html_escape(title) + "\">";
  svg += "<text class=\"title\" x=\"" + number(left) + "\" y=\"18\">" + html_escape(title) + "</text>";
  for (double tick : {0.0, y_max / 2, y_max}) {
    svg += "<line class=\"grid\" x1=\"" + number(left) + "\" x2=\"" + number(width - right) + "\" y1=\"" +
           number(y(tick)) + "\" y2=\"" + number(y(tick)) + "\"/>";
    svg += "<text x=\"" + number(left - 4) + "\" y=\"" + number(y(tick) + 4) + "\" text-anchor=\"end\">" +
           number(tick) + "</text>";
  }
  const double slot = plot_w / static_cast<double>(bars.size()), bar_w = slot * 0.6;
  for (size_t i = 0; i < bars.size(); ++i) {
    const ordered_json& m = *bars[i].metric;
    const double x = left + slot * static_cast<double>(i) + (slot - bar_w) / 2, mid = x + bar_w / 2;
    const std::string value = score_text(m["value"]);
    if (m["value"].is_number()) {
      const double v = m["value"].get<double>();
      svg += "<rect class=\"bar\" x=\"" + number(x) + "\" y=\"" + number(y(v)) + "\" width=\"" + number(bar_w) +
             "\" height=\"" + number(y(0) - y(v)) + "\"><title>" +
             html_escape(bars[i].label + ": " + value + " " + interval(m)) + "</title></rect>";
      if (const auto ci = m.find("ci"); ci != m.end() && ci->is_array()) {
        const double low = y((*ci)[0].get<double>()), high = y((*ci)[1].get<double>());
        svg += "<line class=\"whisker\" x1=\"" + number(mid) + "\" x2=\"" + number(mid) + "\" y1=\"" + number(low) +
               "\" y2=\"" + number(high) + "\"/>";
        for (double cap : {low, high})
          svg += "<line class=\"whisker\" x1=\"" + number(mid - 6) + "\" x2=\"" + number(mid + 6) + "\" y1=\"" +
                 number(cap) + "\" y2=\"" + number(cap) + "\"/>";
      }
    }
    svg += "<text x=\"" + number(mid) + "\" y=\"" + number(y(0) + 14) + "\" text-anchor=\"middle\">" +
           html_escape(shortened(bars[i].label, 12)) + "</text>";
    svg +=
        "<text x=\"" + number(mid) + "\" y=\"" + number(y(0) + 28) + "\" text-anchor=\"middle\">" + value + "</text>";
  }
  return "<figure>" + svg + "</svg></figure>";
}

std::string manifest_section(const ordered_json& report) {
  std::string html = "<h2>Run manifest</h2>";
  if (report["run"].is_null()) {
    html += "<p class=\"warning\">The predictions carry no run manifest.</p>";
  } else {
    html += "<table class=\"manifest\">";
    for (const auto& [key, value] : report["run"].items())
      html += "<tr><th>" + html_escape(key) + "</th>" + cell(json_text(value)) + "</tr>";
    html += "</table>";
  }
  if (!report["run_disagreements"].empty()) {
    html += "<div class=\"warning\"><p>Rows disagree on their run manifest (above: the first row's):</p><ul>";
    for (const auto& d : report["run_disagreements"]) {
      std::string values;
      for (const auto& v : d["values"]) values += (values.empty() ? "" : ", ") + v.dump();
      html += "<li>" + html_escape(d["field"].get<std::string>() + ": " + values) + "</li>";
    }
    html += "</ul></div>";
  }
  if (report["rows_without_run"].get<size_t>() > 0)
    html += "<p class=\"warning\">" + std::to_string(report["rows_without_run"].get<size_t>()) +
            " prediction row(s) have no run manifest.</p>";
  return html;
}

std::string id_list(const ordered_json& ids) {
  std::string text;
  for (const auto& id : ids)
    text += (text.empty() ? "" : ", ") + (id.is_string() ? id.get<std::string>() : id["id"].get<std::string>());
  return html_escape(text);
}

std::string summary_section(const ordered_json& report) {
  std::string html = "<h2>Data</h2><ul>";
  html += "<li>" + std::to_string(report["items"].get<size_t>()) + " items scored; scores are " +
          html_escape(report["scores"].get<std::string>()) + ".</li>";
  if (report["bootstrap"].is_object())
    html += "<li>Bootstrap: " + report["bootstrap"]["resamples"].dump() + " resamples, seed " +
            report["bootstrap"]["seed"].dump() + ".</li>";
  html += "<li>Uncertain findings count as " + html_escape(report["uncertain"].get<std::string>()) + ".</li>";
  if (!report["errored"].empty())
    html += "<li class=\"warning\">" + std::to_string(report["errored"].size()) +
            " row(s) had an error and score as empty answers: " + id_list(report["errored"]) + "</li>";
  if (!report["unmatched_predictions"].empty())
    html += "<li class=\"warning\">Predictions with no reference (not scored): " +
            id_list(report["unmatched_predictions"]) + "</li>";
  if (!report["unmatched_references"].empty())
    html +=
        "<li class=\"warning\">References with no prediction (not scored): " + id_list(report["unmatched_references"]) +
        "</li>";
  return html + "</ul>";
}

std::string metrics_section(const ordered_json& report) {
  const ordered_json* baseline = report.contains("baseline") ? &report["baseline"]["metrics"] : nullptr;
  std::string html = "<h2>Metrics</h2><table class=\"metrics\"><tr><th>Metric</th><th>Value</th><th>95% CI</th>";
  if (baseline) html += "<th>Baseline</th><th>Tolerance</th><th>Result</th>";
  html += "</tr>";
  for (const auto& [name, metric] : report["metrics"].items()) {
    html += "<tr><th>" + html_escape(name) + "</th>" + cell(score_text(metric["value"]), "num") +
            cell(interval(metric), "num");
    if (baseline) {
      if (baseline->contains(name)) {
        const ordered_json& b = (*baseline)[name];
        const std::string result = b["result"].get<std::string>();
        html += cell(score_text(b["baseline"]), "num") + cell(score_text(b["tolerance"]), "num") + "<td class=\"" +
                result + "\">" + result + "</td>";
      } else {
        html += "<td></td><td></td><td></td>";
      }
    }
    html += "</tr>";
  }
  html += "</table>";
  if (baseline)
    html += "<p>Baseline: <span class=\"" + report["baseline"]["result"].get<std::string>() + "\">" +
            report["baseline"]["result"].get<std::string>() + "</span></p>";
  return html;
}

std::string groups_section(const ordered_json& report) {
  const std::string by = report["by"].get<std::string>();
  std::string html =
      "<h2>By " + html_escape(by) + "</h2><table class=\"groups\"><tr><th>" + html_escape(by) + "</th><th>Items</th>";
  for (const std::string& name : metric_names()) html += "<th>" + html_escape(name) + "</th>";
  html += "</tr>";
  for (const auto& g : report["groups"]) {
    html += "<tr>" + cell(g["name"].get<std::string>()) + cell(g["items"].dump(), "num");
    for (const std::string& name : metric_names()) {
      const ordered_json& m = g["metrics"][name];
      const std::string ci = interval(m);
      html += cell(score_text(m["value"]) + (ci.empty() ? "" : " " + ci), "num");
    }
    html += "</tr>";
  }
  html += "</table><div class=\"charts\">";
  for (const std::string& name : metric_names()) {
    std::vector<Bar> bars;
    for (const auto& g : report["groups"]) bars.push_back({g["name"].get<std::string>(), &g["metrics"][name]});
    html += bar_chart(name + " by " + by, bars);
  }
  return html + "</div>";
}

std::string findings_section(const ordered_json& report) {
  std::string html =
      "<h2>Findings (CheXpert-style labels)</h2><table class=\"findings\"><tr><th>Finding</th><th>TP</th>"
      "<th>FP</th><th>FN</th><th>Support</th><th>Precision</th><th>Recall</th><th>F1</th></tr>";
  for (const auto& f : report["findings"]) {
    html += "<tr>" + cell(f["finding"].get<std::string>());
    for (const char* count : {"tp", "fp", "fn", "support"}) html += cell(f[count].dump(), "num");
    for (const char* s : {"precision", "recall", "f1"}) html += cell(score_text(f[s]), "num");
    html += "</tr>";
  }
  return html +
         "</table><p>n/a: no prediction or reference is positive for that finding (left out of the macro F1).</p>";
}

std::string worst_section(const ordered_json& report) {
  std::string html =
      "<h2>Worst items by ROUGE-L</h2><table class=\"worst\"><tr><th>Id</th><th>ROUGE-L</th><th>Answer</th>"
      "<th>Reference</th></tr>";
  for (const auto& w : report["worst_items"])
    html += "<tr>" + cell(w["id"].get<std::string>()) + cell(score_text(w["ROUGE-L"]), "num") +
            cell(w["answer"].get<std::string>(), "text") + cell(w["reference"].get<std::string>(), "text") + "</tr>";
  return html + "</table>";
}

}  // namespace

std::string html_escape(std::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&#39;";
        break;
      default:
        out += c;
    }
  }
  return out;
}

std::string html_report(const nlohmann::ordered_json& report, std::string_view generated_at) {
  std::string html =
      "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
      "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
      "<title>medlab eval report</title><style>" +
      std::string(kStyle) + "</style></head><body>\n";
  html +=
      "<header><h1>medlab evaluation report</h1><p class=\"notice\">Research software, not for diagnosis. "
      "These scores compare generated text with reference text; they say nothing about clinical safety.</p></header>\n";
  html += manifest_section(report) + "\n" + summary_section(report) + "\n" + metrics_section(report) + "\n";
  if (report.contains("groups")) {
    html += groups_section(report) + "\n";
  } else {
    std::vector<Bar> bars;
    for (const auto& [name, metric] : report["metrics"].items()) bars.push_back({name, &metric});
    html += "<h2>Chart</h2><div class=\"charts\">" + bar_chart("Corpus metrics", bars) + "</div>\n";
  }
  html += findings_section(report) + "\n" + worst_section(report) + "\n";
  html += "<footer>medlab eval";
  if (!generated_at.empty()) html += ", generated " + html_escape(generated_at);
  return html + ". Research software, not for diagnosis.</footer>\n</body></html>\n";
}

}  // namespace medlab
