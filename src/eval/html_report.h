// The eval report as one self-contained HTML page (inline CSS and SVG, no scripts, no external URLs): the
// run manifest, corpus metrics with intervals and baseline results, groups with one bar chart per metric,
// per-finding F1 and the worst items. Every text from the inputs is escaped.
#pragma once

#include <nlohmann/json.hpp>
#include <string>
#include <string_view>

namespace medlab {

// `report` is what evaluate() returns (with check_baseline's result when a baseline was given);
// `generated_at` is printed in the footer when not empty (the JSON report has no time in it).
std::string html_report(const nlohmann::ordered_json& report, std::string_view generated_at);

// Text safe inside HTML elements and attribute values: & < > " ' as entities.
std::string html_escape(std::string_view text);

}  // namespace medlab
