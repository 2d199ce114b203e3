//! `prove --html FILE`: one self-contained page with the prediction, what
//! the console showed and the verdict, the boot's stage timeline (an
//! inline SVG chart marking the predicted stop), the timings of `check`
//! against the boot, and the console log's tail. Rendered from the
//! `bootproof.prove/v1` document, the same one `--json` prints.

use super::escape::html as esc;
use super::html::{console_tail, STYLE};
use super::timeline;
use serde_json::Value;

/// Renders a `bootproof.prove/v1` document. The console log it names is
/// embedded: the page describes a boot this process made.
pub fn render(doc: &Value) -> String {
    let s = |v: &Value| v.as_str().unwrap_or("").to_string();
    let image = s(&doc["image"]);
    let p = &doc["prediction"];
    let boot = &doc["boot"]["result"];
    let predicted = s(&p["stage"]);
    let rules: Vec<String> = p["rules"]
        .as_array()
        .map(|a| a.iter().map(s).collect())
        .unwrap_or_default();
    let (verdict, class) = match doc["held"].as_bool() {
        Some(true) => ("the prediction held", "pass"),
        Some(false) => ("the prediction MISSED", "fail"),
        None => ("no verdict: the boot did not finish", "infra-error"),
    };
    let mut h = String::from("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">");
    h.push_str(&format!(
        "<meta name=\"viewport\" content=\"width=device-width\"><title>bootproof prove — {}</title>\
         <style>{STYLE}</style></head><body><h1>bootproof prove</h1>",
        esc(&image)
    ));
    h.push_str(&format!(
        "<div class=\"meta\">Image: <code>{}</code> ({})</div>",
        esc(&image),
        esc(&s(&doc["arch"]))
    ));
    h.push_str("<table class=\"matrix\" id=\"verdict\">");
    let mut row = |k: &str, v: String| h.push_str(&format!("<tr><th>{k}</th><td>{v}</td></tr>"));
    row(
        "Predicted",
        format!(
            "{}{}{}",
            esc(&predicted),
            if predicted == "login" {
                String::new()
            } else {
                format!(": {}", esc(&s(&p["cause"])))
            },
            if rules.is_empty() {
                String::new()
            } else {
                format!(" (<code>{}</code>)", esc(&rules.join(", ")))
            }
        ),
    );
    let expected = s(&doc["expected"]);
    if expected != predicted {
        row(
            "Expected",
            format!("the serial console goes quiet after the {}", esc(&expected)),
        );
    }
    row(
        "Observed",
        format!(
            "{}: {}",
            esc(doc["observed"]["stage"].as_str().unwrap_or("no verdict")),
            esc(&s(&doc["observed"]["evidence"]))
        ),
    );
    row(
        "Verdict",
        format!("<span class=\"badge {class}\" id=\"held\">{verdict}</span>"),
    );
    row(
        "Time",
        format!(
            "check {:.0} ms · boot {:.1} s",
            doc["check_ms"].as_f64().unwrap_or(0.0),
            boot["elapsed"].as_f64().unwrap_or(0.0)
        ),
    );
    h.push_str("</table><h2>Boot timeline</h2>");
    h.push_str(&timeline::of_boot(boot, Some(&expected)));
    let log = boot["console_log"]
        .as_str()
        .and_then(console_tail)
        .unwrap_or_default();
    h.push_str(&format!(
        "<details class=\"console\"><summary>console log</summary><pre>{}</pre></details>",
        esc(&log)
    ));
    h.push_str("</body></html>\n");
    h
}

/// Writes the page of `report` to `path`.
pub fn write(
    path: &std::path::Path,
    report: &crate::prove::ProveReport,
) -> Result<(), crate::Error> {
    let doc = serde_json::to_value(report).map_err(|e| crate::Error::new(e.to_string()))?;
    std::fs::write(path, render(&doc))
        .map_err(|e| crate::Error::new(format!("writing {}: {e}", path.display())))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn the_page_states_prediction_observation_and_verdict() {
        let doc = json!({
            "image": "<disk>.raw", "arch": "x86_64", "held": false, "expected": "login",
            "prediction": {"stage": "login", "cause": "", "rules": []},
            "observed": {"stage": "loader", "evidence": "GRUB command line <no menu>"},
            "check_ms": 12.0,
            "boot": {"result": {"outcome": "stalled", "elapsed": 9.5,
                "stages": [{"stage": "grub-started", "host_time": 2.0}]}}
        });
        let page = render(&doc);
        assert!(page.contains("the prediction MISSED"));
        assert!(page.contains("&lt;disk&gt;.raw") && !page.contains("<disk>"));
        assert!(page.contains("GRUB command line &lt;no menu&gt;"));
        assert!(page.contains("<svg class=\"timeline\""));
        assert!(page.contains("check 12 ms · boot 9.5 s"));
    }
}
