//! Command-line calculators: `ketacare score`, `ketacare outcome`, `ketacare screen`,
//! `ketacare dose`, `ketacare protocols` and `ketacare wording check`. They use the same
//! knowledge files and domain rules as the server and need no database.

use ketacare_domain::instrument::{AnswerKind, Instrument, Outcome, Score};
use ketacare_domain::validation::FieldErrors;
use ketacare_knowledge::Knowledge;
use rust_decimal::Decimal;
use serde_json::{json, Value};

fn unknown(k: &Knowledge, key: &str) -> String {
    let keys: Vec<&str> = k.instruments.iter().map(|i| i.key.as_str()).collect();
    format!("unknown instrument {key:?}; use one of {}", keys.join(", "))
}

fn errors_text(e: &FieldErrors) -> String {
    e.iter().map(|x| x.message.clone()).collect::<Vec<_>>().join("; ")
}

fn num(d: Decimal) -> Value {
    // Exact decimals are printed as JSON numbers from their exact text.
    serde_json::from_str(&d.normalize().to_string()).unwrap_or(Value::Null)
}

/// The published item order and accepted answers of an instrument.
pub fn describe(k: &Knowledge, key: &str, as_json: bool) -> Result<String, String> {
    let inst = k.instrument(key).ok_or_else(|| unknown(k, key))?;
    if as_json {
        let items: Vec<Value> = inst
            .items
            .iter()
            .enumerate()
            .map(|(n, i)| {
                json!({"position": n + 1, "key": i.key, "label": i.label, "accepted": i.accepted(), "scored": i.scored, "optional": i.optional,
                       "skipped_when": i.skip.as_ref().map(|s| json!({"item": s.when_item, "equals": s.equals}))})
            })
            .collect();
        return Ok(serde_json::to_string_pretty(
            &json!({"instrument": inst.key, "name": inst.name, "title": inst.title, "version": inst.version,
            "respondent": inst.respondent.code(), "items": items, "caveats": inst.caveats}),
        )
        .unwrap_or_default());
    }
    let mut out = format!("{} — {} (definition {})\nFilled in by: {}\n", inst.name, inst.title, inst.version, inst.respondent.code());
    let yes_no = inst.items.iter().any(|i| i.kind == AnswerKind::YesNo);
    out.push_str(&format!(
        "Give --items as {} values in this order, separated by commas{}:\n",
        inst.items.len(),
        if yes_no { " (y, n, or - when skipped)" } else { " (- or nothing for an optional item)" }
    ));
    for (n, i) in inst.items.iter().enumerate() {
        let mut extra = Vec::new();
        if !i.scored {
            extra.push("not in the total".to_owned());
        }
        if i.optional {
            extra.push("optional".to_owned());
        }
        if let Some(s) = &i.skip {
            extra.push(format!("skipped when {} is {}", s.when_item, if s.equals == 0 { "n" } else { "y" }));
        }
        let extra = if extra.is_empty() { String::new() } else { format!(" [{}]", extra.join("; ")) };
        out.push_str(&format!("{:>3}. {:<14} {} — {}{}\n", n + 1, i.key, i.label, i.accepted(), extra));
    }
    for c in &inst.caveats {
        out.push_str(&format!("Note: {c}\n"));
    }
    Ok(out)
}

fn score_json(inst: &Instrument, s: &Score) -> Value {
    json!({
        "instrument": inst.key,
        "name": inst.name,
        "version": inst.version,
        "total": s.total.map(num),
        "total_min": num(s.total_min),
        "total_max": num(s.total_max),
        "percent_max": s.percent_max.map(num),
        "band": s.band.as_ref().map(|b| json!({"code": b.code, "label": b.label})),
        "subscales": s.subscales.iter().map(|x| json!({"key": x.key, "label": x.label, "value": num(x.value), "min": num(x.min), "max": num(x.max)})).collect::<Vec<_>>(),
        "triage": s.triage,
        "flags": s.flags.iter().map(|f| json!({"code": f.code, "label": f.label, "urgent": f.urgent})).collect::<Vec<_>>(),
    })
}

/// Scores `items` (`3,2,1` or `y,n,-`).
pub fn score(k: &Knowledge, key: &str, items: &str, as_json: bool) -> Result<String, String> {
    let inst = k.instrument(key).ok_or_else(|| unknown(k, key))?;
    let answers = inst.parse_answers(items).map_err(|e| errors_text(&e))?;
    let needed = inst.items.iter().rposition(|i| !i.optional && i.skip.is_none()).map_or(0, |p| p + 1);
    if answers.len() < needed {
        return Err(format!(
            "{} needs {} values in its published order (see: ketacare score {} --describe); {} were given",
            inst.name,
            inst.items.len(),
            inst.key,
            answers.len()
        ));
    }
    let s = inst.score(&answers, None).map_err(|e| errors_text(&e))?;
    if as_json {
        return Ok(serde_json::to_string_pretty(&score_json(inst, &s)).unwrap_or_default());
    }
    let mut out = format!("{} ({})\n", inst.name, inst.title);
    if let Some(t) = s.total {
        out.push_str(&format!("Total: {} (range {}–{})\n", t.normalize(), s.total_min.normalize(), s.total_max.normalize()));
    }
    if let Some(p) = s.percent_max {
        out.push_str(&format!("Percent of maximum: {} %\n", p.normalize()));
    }
    match &s.band {
        Some(b) => out.push_str(&format!("Band: {} ({})\n", b.label, inst.default_band_set().map(|x| x.label.as_str()).unwrap_or(""))),
        None if inst.has_total => out.push_str("Band: none defined for this instrument\n"),
        None => {}
    }
    for x in &s.subscales {
        out.push_str(&format!("{}: {} (range {}–{})\n", x.label, x.value.normalize(), x.min.normalize(), x.max.normalize()));
    }
    if let Some(t) = &s.triage {
        let label = inst.triage.iter().find(|r| &r.level == t).map(|r| r.label.clone()).unwrap_or_else(|| t.clone());
        out.push_str(&format!("Triage: {t} ({label})\n"));
    }
    if s.flags.is_empty() {
        out.push_str("Flags: none\n");
    }
    for f in &s.flags {
        out.push_str(&format!("Flag{}: {} — {}\n", if f.urgent { " (URGENT)" } else { "" }, f.code, f.label));
    }
    Ok(out)
}

fn outcome_json(inst: &Instrument, o: &Outcome) -> Value {
    let rules = &inst.default_rules;
    json!({
        "instrument": inst.key,
        "baseline": num(o.baseline),
        "current": num(o.current),
        "change": num(o.change),
        "change_percent": o.change_percent.map(num),
        "response": o.response,
        "remission": o.remission,
        "rci": o.rci.map(num),
        "reliable_change": o.reliable_change.map(|r| r.code()),
        "rules": {
            "response": rules.response.as_ref().map(|r| json!({"percent": num(r.percent), "strict": r.strict, "source": r.source})),
            "remission": rules.remission.as_ref().map(|r| json!({"total_at_most": num(r.total_at_most), "no_item_above": r.no_item_above, "source": r.source})),
        }
    })
}

/// Change from baseline to current.
pub fn outcome(k: &Knowledge, key: &str, baseline: &str, current: &str, as_json: bool) -> Result<String, String> {
    let inst = k.instrument(key).ok_or_else(|| unknown(k, key))?;
    let mut e = FieldErrors::new();
    let parse = |s: &str| s.trim().parse::<Decimal>().map_err(|_| format!("must be a whole number; got {:?}", s.trim()));
    let b = e.check("baseline", parse(baseline).map_err(|m| format!("--baseline {m}")));
    let c = e.check("current", parse(current).map_err(|m| format!("--current {m}")));
    let (Some(b), Some(c)) = (b, c) else { return Err(errors_text(&e)) };
    let o = inst
        .outcome(&inst.default_rules, b, c, None)
        .map_err(|e| errors_text(&e).replace("baseline must", "--baseline must").replace("current must", "--current must"))?;
    if as_json {
        return Ok(serde_json::to_string_pretty(&outcome_json(inst, &o)).unwrap_or_default());
    }
    let yn = |v: Option<bool>| match v {
        Some(true) => "yes",
        Some(false) => "no",
        None => "not defined",
    };
    let mut out = format!("{}: baseline {} → current {}\n", inst.name, o.baseline.normalize(), o.current.normalize());
    out.push_str(&format!(
        "Change: {} points{}\n",
        o.change.normalize(),
        o.change_percent.map(|p| format!(" ({} %)", p.normalize())).unwrap_or_else(|| " (percent undefined: baseline is 0)".into())
    ));
    let resp_rule = inst
        .default_rules
        .response
        .as_ref()
        .map(|r| format!(" (rule: {} {} % improvement)", if r.strict { "more than" } else { "at least" }, r.percent.normalize()))
        .unwrap_or_default();
    out.push_str(&format!("Response: {}{resp_rule}\n", yn(o.response)));
    let rem_rule = inst
        .default_rules
        .remission
        .as_ref()
        .map(|r| format!(" (rule: total at most {})", r.total_at_most.normalize()))
        .unwrap_or_default();
    let rem = match (&inst.default_rules.remission, o.remission) {
        (Some(r), None) if r.no_item_above.is_some() => "needs the item answers (rule has an item condition)",
        _ => yn(o.remission),
    };
    out.push_str(&format!("Remission: {rem}{rem_rule}\n"));
    match (o.rci, o.reliable_change) {
        (Some(r), Some(c)) => out.push_str(&format!("Reliable change index: {} ({})\n", r.normalize(), c.code().replace('_', " "))),
        _ => out.push_str("Reliable change index: not available (no published reliability and SD on file)\n"),
    }
    Ok(out)
}

/// Checks a clinic's wording file against its instrument (named in the file).
pub fn check_wording(k: &Knowledge, text: &str, as_json: bool) -> Result<String, String> {
    let input = ketacare_knowledge::wording::parse_wording_input(text).map_err(|e| errors_text(&e))?;
    let inst = k.instrument(input.instrument.trim()).ok_or_else(|| format!("instrument: {}", unknown(k, input.instrument.trim())))?;
    let w = inst.check_wording(&input).map_err(|e| {
        let lines: Vec<String> = e.iter().map(|x| format!("{}: {}", x.field, x.message)).collect();
        format!(
            "the wording file does not fit {} ({} problem{}):\n  {}",
            inst.name,
            lines.len(),
            if lines.len() == 1 { "" } else { "s" },
            lines.join("\n  ")
        )
    })?;
    if as_json {
        let items: Vec<Value> = w.items.iter().map(|i| json!({"key": i.key, "text": i.text, "choice_labels": i.choice_labels})).collect();
        return Ok(serde_json::to_string_pretty(&json!({
            "instrument": w.instrument, "valid": true, "language": w.language, "notice": w.notice,
            "licence_reference": w.licence_reference, "instructions": w.instructions, "items": items,
        }))
        .unwrap_or_default());
    }
    let mut out = format!("{}: the wording file fits ({} items, language {}).\n", inst.name, w.items.len(), w.language);
    if let Some(t) = &w.instructions {
        out.push_str(&format!("Instructions: {t}\n"));
    }
    let worded = inst.with_wording(&w);
    for (n, item) in worded.items.iter().enumerate() {
        let labels: Vec<String> = item.choices().iter().filter_map(|c| item.choice_label(*c).map(|l| format!("{c} {l}"))).collect();
        out.push_str(&format!(
            "{:>3}. {}{}\n",
            n + 1,
            item.label,
            if labels.is_empty() { String::new() } else { format!("  [{}]", labels.join(" | ")) }
        ));
    }
    out.push_str(&format!("Notice: {}\n", w.notice));
    Ok(out)
}

/// Screens an intake document (JSON, `docs/intake.schema.json`).
pub fn screen(k: &Knowledge, text: &str, as_json: bool) -> Result<String, String> {
    use ketacare_domain::screening::Severity;
    let intake = ketacare_web::screening_doc::parse_intake_json(text, k).map_err(|e| {
        let lines: Vec<String> = e.iter().map(|x| format!("{}: {}", x.field, x.message)).collect();
        format!("the intake has {} problem{}:\n  {}", lines.len(), if lines.len() == 1 { "" } else { "s" }, lines.join("\n  "))
    })?;
    let s = ketacare_domain::screening::screen(&intake, &k.screening, &[]);
    if as_json {
        let dto = ketacare_web::screening_doc::ScreeningDto::new(&s, &k.screening.version);
        return Ok(serde_json::to_string_pretty(&dto).unwrap_or_default());
    }
    let mut out = format!("Verdict: {} ({})\n", s.verdict.label(), s.verdict.code());
    for sev in [Severity::Exclusion, Severity::Review, Severity::Caution, Severity::Info] {
        let fs: Vec<_> = s.findings.iter().filter(|f| f.severity == sev).collect();
        if fs.is_empty() {
            continue;
        }
        out.push_str(&format!("\n{} ({}):\n", sev.label(), fs.len()));
        for f in fs {
            out.push_str(&format!("- {}{}\n", f.title, if f.unverified { " [UNVERIFIED]" } else { "" }));
            out.push_str(&format!("    because: {}\n", f.trigger));
            if !f.effect.is_empty() {
                out.push_str(&format!("    why it matters: {}\n", f.effect));
            }
            if f.action != "None." {
                out.push_str(&format!("    do: {}\n", f.action));
            }
            if let Some(c) = &f.conflict {
                out.push_str(&format!("    sources conflict: {c}\n"));
            }
            out.push_str(&format!("    source: {}\n", f.source));
        }
    }
    if !s.trials.is_empty() {
        out.push_str(&format!("\nPrior trials ({}):\n", s.resistance_definition));
        for t in &s.trials {
            out.push_str(&format!("- {} [{}]: {}\n", t.name, t.status.code(), t.explanation));
        }
    }
    Ok(out)
}

/// The conditions and medicines the screening knows (`ketacare screen --list`).
pub fn screening_lists(k: &Knowledge, as_json: bool) -> String {
    let r = &k.screening;
    if as_json {
        let conditions: Vec<Value> = r
            .conditions
            .iter()
            .map(|c| json!({"key": c.key, "label": c.label, "synonyms": c.synonyms, "grade": c.grade.code(), "grade_if_controlled": c.grade_if_controlled.map(|g| g.code()), "unverified": c.unverified}))
            .collect();
        let interactions: Vec<Value> = r
            .interactions
            .iter()
            .map(|i| json!({"key": i.key, "class": i.class, "grade": i.grade.code(), "unverified": i.unverified, "members": i.members.iter().map(|m| json!({"name": m.name, "rxnorm": m.rxnorm, "brands": m.brands})).collect::<Vec<_>>()}))
            .collect();
        let none: Vec<&str> = r.no_interaction.iter().map(|m| m.name.as_str()).collect();
        return serde_json::to_string_pretty(
            &json!({"version": r.version, "conditions": conditions, "interactions": interactions, "no_listed_interaction": none}),
        )
        .unwrap_or_default();
    }
    let mut out = format!("Screening knowledge ({})\n\nConditions (key: label [grade]):\n", r.version);
    for c in &r.conditions {
        let g = match c.grade_if_controlled {
            Some(gc) => format!("{}; {} when controlled", c.grade.code(), gc.code()),
            None => c.grade.code().to_owned(),
        };
        out.push_str(&format!("  {}: {} [{g}]{}\n", c.key, c.label, if c.unverified { " UNVERIFIED" } else { "" }));
    }
    out.push_str("\nInteractions (class [grade]: medicines):\n");
    for i in &r.interactions {
        let m: Vec<String> = i.members.iter().map(|m| m.name.clone()).collect();
        out.push_str(&format!("  {} [{}]{}: {}\n", i.class, i.grade.code(), if i.unverified { " UNVERIFIED" } else { "" }, m.join(", ")));
    }
    let none: Vec<&str> = r.no_interaction.iter().map(|m| m.name.as_str()).collect();
    out.push_str(&format!("\nNo listed interaction: {}\n", none.join(", ")));
    out
}

/// Arguments of `ketacare dose`, as typed.
pub struct DoseArgs<'a> {
    /// kg.
    pub weight_kg: &'a str,
    /// mg/kg.
    pub mg_per_kg: Option<&'a str>,
    /// mg (intranasal).
    pub dose_mg: Option<&'a str>,
    /// Route code.
    pub route: &'a str,
    /// Minutes.
    pub minutes: Option<&'a str>,
    /// mg/mL.
    pub concentration_mg_per_ml: Option<&'a str>,
    /// mL.
    pub final_volume_ml: Option<&'a str>,
    /// cm.
    pub height_cm: Option<&'a str>,
    /// male or female.
    pub sex: Option<&'a str>,
    /// actual, ideal or adjusted.
    pub weight_basis: Option<&'a str>,
}

/// Calculates a dose; returns the text and whether a hard limit refused it.
pub fn dose(k: &Knowledge, a: &DoseArgs, as_json: bool) -> Result<(String, bool), String> {
    use ketacare_domain::dose::{calculate, format_amount as fa, DoseInput};
    let lib = &k.drug_library;
    let input = DoseInput {
        route: a.route.to_owned(),
        weight_kg: a.weight_kg.to_owned(),
        mg_per_kg: a.mg_per_kg.unwrap_or_default().to_owned(),
        dose_mg: a.dose_mg.unwrap_or_default().to_owned(),
        concentration_mg_per_ml: a.concentration_mg_per_ml.unwrap_or_default().to_owned(),
        final_volume_ml: a.final_volume_ml.unwrap_or_default().to_owned(),
        minutes: a.minutes.unwrap_or_default().to_owned(),
        height_cm: a.height_cm.unwrap_or_default().to_owned(),
        sex: a.sex.unwrap_or_default().to_owned(),
        weight_basis: a.weight_basis.unwrap_or_default().to_owned(),
    };
    let named =
        |e: &FieldErrors| e.iter().map(|x| format!("--{}: {}", x.field.replace('_', "-"), x.message)).collect::<Vec<_>>().join("; ");
    let req = lib.parse_dose(&input, (k.anthropometry.weight_min_kg, k.anthropometry.weight_max_kg)).map_err(|e| named(&e))?;
    let limits = lib.limits(req.route).ok_or_else(|| format!("--route: the drug library has no limits for {}", req.route.code()))?;
    let r = calculate(&req, limits, &lib.policy).map_err(|e| named(&e))?;
    let refused = r.refused();
    let mut warnings: Vec<String> =
        r.breaches.iter().map(|b| format!("{} limit: {} (source: {})", b.level.code(), b.message, b.source)).collect();
    warnings.extend(r.warnings.iter().cloned());
    if as_json {
        let n = |d: Option<Decimal>| d.map(num).unwrap_or(Value::Null);
        let v = json!({
            "route": r.route.code(),
            "weight_basis": r.basis.code(),
            "weight_used_kg": num(r.weight_used_kg),
            "bmi": n(r.bmi),
            "ibw_kg": n(r.ibw_kg),
            "adjbw_kg": n(r.adjbw_kg),
            "dose_requested_mg": num(r.dose_requested_mg),
            "dose_mg": num(r.dose_mg),
            "dose_mg_per_kg": num(r.dose_mg_per_kg),
            "concentration_mg_per_ml": n(r.concentration_mg_per_ml),
            "drug_volume_ml": n(r.drug_volume_ml),
            "diluent_ml": n(r.diluent_ml),
            "final_volume_ml": n(r.final_volume_ml),
            "final_concentration_mg_per_ml": n(r.final_concentration_mg_per_ml),
            "minutes": n(r.minutes),
            "rate_ml_per_h": n(r.rate_ml_per_h),
            "rate_mg_per_h": n(r.rate_mg_per_h),
            "rate_mg_per_kg_per_h": n(r.rate_mg_per_kg_per_h),
            "devices": r.devices,
            "display": { "dose": format!("{} mg", fa(r.dose_mg)), "volume": r.drug_volume_ml.map(|v| format!("{} mL", fa(v))) },
            "limits": r.breaches.iter().map(|b| json!({"level": b.level.code(), "quantity": b.quantity, "message": b.message, "source": b.source})).collect::<Vec<_>>(),
            "refused": refused,
            "needs_override": r.needs_override(),
            "warnings": warnings,
            "steps": r.steps,
            "drug_library_version": lib.version,
        });
        return Ok((serde_json::to_string_pretty(&v).unwrap_or_default(), refused));
    }
    let mut out = String::new();
    if refused {
        out.push_str("REFUSED: a hard limit is breached; this dose cannot be given.\n");
    } else if r.needs_override() {
        out.push_str("SOFT LIMIT: this dose needs a reason and a second clinician.\n");
    }
    out.push_str(&format!(
        "Dose: {} mg ({} mg/kg of {} kg, {} weight)\n",
        fa(r.dose_mg),
        fa(r.dose_mg_per_kg),
        fa(r.weight_used_kg),
        r.basis.code()
    ));
    if let (Some(v), Some(c)) = (r.drug_volume_ml, r.concentration_mg_per_ml) {
        out.push_str(&format!("Draw: {} mL of {} mg/mL\n", fa(v), fa(c)));
    }
    if let (Some(dl), Some(fv), Some(fc)) = (r.diluent_ml, r.final_volume_ml, r.final_concentration_mg_per_ml) {
        out.push_str(&format!("Dilute: add {} mL to make {} mL at {} mg/mL\n", fa(dl), fa(fv), fa(fc)));
    }
    if let (Some(rm), Some(mg), Some(mgkg), Some(min)) = (r.rate_ml_per_h, r.rate_mg_per_h, r.rate_mg_per_kg_per_h, r.minutes) {
        out.push_str(&format!("Rate: {} mL/h ({} mg/h, {} mg/kg/h) over {} min\n", fa(rm), fa(mg), fa(mgkg), fa(min)));
    }
    if let Some(n) = r.devices {
        out.push_str(&format!("Devices: {n} x 28 mg\n"));
    }
    out.push_str("Calculation:\n");
    for s in &r.steps {
        out.push_str(&format!("  {s}\n"));
    }
    for w in &warnings {
        out.push_str(&format!("Warning: {w}\n"));
    }
    Ok((out, refused))
}

/// The protocols and their steps.
pub fn protocols(k: &Knowledge, as_json: bool) -> String {
    if as_json {
        let v: Vec<Value> = k
            .protocols
            .iter()
            .map(|p| {
                json!({
                    "key": p.key, "name": p.name, "route": p.route.code(), "indication": p.indication, "source": p.source,
                    "steps": p.steps.iter().map(|s| json!({
                        "key": s.key, "label": s.label, "day": s.day, "dose": s.dose_rule(), "timing": s.timing(),
                        "mg_per_kg": s.mg_per_kg.map(num), "fixed_mg": s.fixed_mg.map(num), "minutes": s.minutes,
                        "repeat_every_days": s.repeat_every_days, "repeat_until_day": s.repeat_until_day,
                        "assessments": s.assessments, "move_on": s.move_on,
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        return serde_json::to_string_pretty(&v).unwrap_or_default();
    }
    let mut out = String::new();
    for p in &k.protocols {
        out.push_str(&format!("{} ({}, {})\n  {}\n  Source: {}\n", p.name, p.key, p.route.code(), p.indication, p.source));
        for s in &p.steps {
            out.push_str(&format!(
                "  - {}: {}, {}; assessments {}; {}\n",
                s.label,
                s.dose_rule(),
                s.timing(),
                s.assessments.join(", "),
                s.move_on
            ));
        }
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dose_args<'a>(route: &'a str, weight: &'a str, mgkg: &'a str) -> DoseArgs<'a> {
        DoseArgs {
            weight_kg: weight,
            mg_per_kg: Some(mgkg),
            dose_mg: None,
            route,
            minutes: (route == "iv").then_some("40"),
            concentration_mg_per_ml: Some("10"),
            final_volume_ml: (route == "iv").then_some("100"),
            height_cm: None,
            sex: None,
            weight_basis: None,
        }
    }

    #[test]
    fn dose_prints_the_documented_keys_and_refuses_hard_breaches() {
        let k = Knowledge::load().unwrap();
        let (text, refused) =
            dose(&k, &DoseArgs { height_cm: Some("180"), sex: Some("male"), ..dose_args("iv", "72", "0.5") }, true).unwrap();
        assert!(!refused);
        let v: Value = serde_json::from_str(&text).unwrap();
        for key in [
            "dose_mg",
            "drug_volume_ml",
            "final_concentration_mg_per_ml",
            "rate_ml_per_h",
            "rate_mg_per_h",
            "weight_used_kg",
            "bmi",
            "ibw_kg",
            "adjbw_kg",
            "warnings",
        ] {
            assert!(v.get(key).is_some_and(|x| !x.is_null()), "{key} in {v}");
        }
        assert_eq!((v["dose_mg"].clone(), v["drug_volume_ml"].clone(), v["rate_ml_per_h"].clone()), (json!(36), json!(3.6), json!(150)));
        assert_eq!(v["ibw_kg"], json!(75));
        let (text, refused) = dose(&k, &dose_args("iv", "72", "5"), false).unwrap();
        assert!(refused && text.starts_with("REFUSED"), "{text}");
        assert!(text.contains("5 mg/kg is above the hard maximum of 1 mg/kg"), "{text}");
        let (text, _) = dose(&k, &dose_args("sc", "72", "0.5"), true).unwrap();
        let v: Value = serde_json::from_str(&text).unwrap();
        assert!(v["rate_ml_per_h"].is_null() && v["rate_mg_per_h"].is_null(), "SC has no rate");
        let e = dose(&k, &DoseArgs { concentration_mg_per_ml: Some("25"), ..dose_args("iv", "72", "0.5") }, false).unwrap_err();
        assert!(e.contains("--concentration-mg-per-ml: 25 mg/mL is not a concentration on the shelf"), "{e}");
        let e = dose(&k, &dose_args("iv", "500", "0.5"), false).unwrap_err();
        assert!(e.contains("--weight-kg: must be from 20 to 400 kg") && e.contains("pounds"), "{e}");
        let e = dose(&k, &dose_args("oral", "72", "0.5"), false).unwrap_err();
        assert!(e.contains("--route: must be iv, sc, im or in"), "{e}");
        assert!(protocols(&k, false).contains("Ascending dose 1 of 3: 0.25 mg/kg, day 0"));
        let p: Value = serde_json::from_str(&protocols(&k, true)).unwrap();
        assert!(p.as_array().unwrap().len() >= 5);
    }

    const EXAMPLE_INTAKE: &str = include_str!("../../../docs/examples/intake.json");

    #[test]
    fn screen_gives_the_verdict_and_findings_and_names_bad_fields() {
        let k = Knowledge::load().unwrap();
        let v: Value = serde_json::from_str(&screen(&k, EXAMPLE_INTAKE, true).unwrap()).unwrap();
        assert_eq!(v["verdict"], "eligible_with_cautions");
        let codes: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["code"].as_str().unwrap()).collect();
        for c in ["interaction:lamotrigine", "interaction:benzodiazepines", "condition:hypertension", "resistance:met"] {
            assert!(codes.contains(&c), "{c} in {codes:?}");
        }
        assert_eq!(v["findings"][0]["severity"], "caution");
        assert!(v["findings"][0]["source"].as_str().unwrap().len() > 20);
        assert_eq!(v["trials"].as_array().unwrap().len(), 3);
        let psychosis = EXAMPLE_INTAKE.replace(r#""conditions": ["#, r#""conditions": ["schizophrenia", "#);
        let v: Value = serde_json::from_str(&screen(&k, &psychosis, true).unwrap()).unwrap();
        assert_eq!(v["verdict"], "not_eligible");
        let text = screen(&k, EXAMPLE_INTAKE, false).unwrap();
        assert!(text.starts_with("Verdict: Eligible with cautions (eligible_with_cautions)"), "{text}");
        assert!(
            text.contains("sertraline [adequate_failure]: adequate (12 weeks); HAM-A 27 -> 22 is a 18.5 % reduction, below 50 %"),
            "{text}"
        );
        // Bad input: every field named with what is accepted; unknown keys and names refused or reported.
        let bad = r#"{"weight_kg": "176 lb", "bp_systolic": 80, "bp_diastolic": 120, "sex": "f", "baseline_ratings": {"hamd": 20}, "prior_treatments": [{"kind": "drug", "name": "x"}]}"#;
        let e = screen(&k, bad, false).unwrap_err();
        for f in [
            "weight_kg: must be a number in kg (kilograms, not pounds)",
            "bp_diastolic: must be below the systolic",
            "sex: must be female, male, other or unknown",
            "baseline_ratings.hamd:",
            "prior_treatments[0].kind: must be pharmacological or psychotherapy",
        ] {
            assert!(e.contains(f), "{f} in {e}");
        }
        let e = screen(&k, r#"{"wieght_kg": 70}"#, false).unwrap_err();
        assert!(e.contains("unknown field `wieght_kg`"), "{e}");
        let v: Value =
            serde_json::from_str(&screen(&k, r#"{"medications": ["Zorbex 5 mg"], "conditions": ["levitation"]}"#, true).unwrap()).unwrap();
        let titles: Vec<&str> = v["findings"].as_array().unwrap().iter().map(|f| f["title"].as_str().unwrap()).collect();
        assert!(
            titles.contains(&"Medicine not recognised: Zorbex 5 mg") && titles.contains(&"Condition not recognised: levitation"),
            "{titles:?}"
        );
        let lists = screening_lists(&k, false);
        assert!(lists.contains("psychosis: Psychotic disorder") && lists.contains("Benzodiazepines [caution]"), "{lists}");
    }

    #[test]
    fn wording_check_accepts_the_example_and_names_each_problem() {
        let k = Knowledge::load().unwrap();
        let ok = ketacare_knowledge::wording::GAD7_EXAMPLE;
        let v: Value = serde_json::from_str(&check_wording(&k, ok, true).unwrap()).unwrap();
        assert_eq!((v["instrument"].as_str(), v["valid"].as_bool()), (Some("gad7"), Some(true)));
        assert_eq!(v["items"].as_array().unwrap().len(), 7);
        assert!(check_wording(&k, ok, false).unwrap().contains("7. Feeling afraid, as if something awful might happen"));
        let bad = ok.replace("key = \"q7\"", "key = \"q9\"");
        let e = check_wording(&k, &bad, false).unwrap_err();
        assert!(e.contains("\"q9\" is not an item of GAD-7") && e.contains("q7: GAD-7 item 7 (q7) has no text"), "{e}");
        let e = check_wording(&k, &ok.replace("\"gad7\"", "\"gad8\""), false).unwrap_err();
        assert!(e.starts_with("instrument: unknown instrument \"gad8\""), "{e}");
    }

    #[test]
    fn scores_and_compares_as_documented() {
        let k = Knowledge::load().unwrap();
        let v: Value = serde_json::from_str(&score(&k, "gad7", "3,2,2,1,3,2,1", true).unwrap()).unwrap();
        assert_eq!(v["instrument"], "gad7");
        assert_eq!(v["total"], 14);
        assert_eq!(v["band"]["code"], "moderate");
        assert!(v["subscales"].is_array() && v["flags"].is_array());
        let v: Value = serde_json::from_str(&score(&k, "qlesq_sf", "3,3,3,3,3,3,3,3,3,3,3,3,3,3,-,4", true).unwrap()).unwrap();
        assert_eq!(v["percent_max"], 50);
        let v: Value = serde_json::from_str(&score(&k, "cssrs_screener", "y,n,-,-,-,y,n", true).unwrap()).unwrap();
        assert_eq!(v["triage"], "moderate");
        assert_eq!(v["flags"][0]["urgent"], true);
        let e = score(&k, "gad7", "3,2,2,1,3,2,7", false).unwrap_err();
        assert!(e.contains("item 7") && e.contains("from 0 to 3"), "{e}");
        let e = score(&k, "nope", "1", false).unwrap_err();
        assert!(e.contains("gad7"));
        let v: Value = serde_json::from_str(&outcome(&k, "lsas", "100", "65", true).unwrap()).unwrap();
        assert_eq!(v["response"], false);
        assert_eq!(v["change_percent"], -35);
        let t = outcome(&k, "hama", "24", "12", false).unwrap();
        assert!(t.contains("Response: yes"), "{t}");
        let e = outcome(&k, "gad7", "abc", "x", false).unwrap_err();
        assert!(e.contains("--baseline") && e.contains("--current"), "{e}");
        assert!(describe(&k, "lsas", false).unwrap().contains("48 values"));
    }
}
