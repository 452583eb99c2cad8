//! Statistics for cohort analytics: proportions with Wilson intervals, Kaplan-Meier survival
//! with Greenwood variance and log-log confidence intervals, and logistic regression by
//! iteratively reweighted least squares with Wald intervals. Exploratory: every result carries
//! the numbers it rests on, and small numbers are flagged by the caller.

/// The 97.5th percentile of the standard normal distribution (two-sided 95 % intervals).
pub const Z95: f64 = 1.959_963_984_540_054;

/// A proportion with its 95 % Wilson score interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Proportion {
    /// Successes.
    pub k: u64,
    /// Trials.
    pub n: u64,
    /// k / n.
    pub p: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// The Wilson score interval of k successes in n trials (None when n is 0).
pub fn wilson(k: u64, n: u64, z: f64) -> Option<Proportion> {
    if n == 0 || k > n {
        return None;
    }
    let nf = n as f64;
    let p = k as f64 / nf;
    let z2 = z * z;
    let denom = 1.0 + z2 / nf;
    let centre = (p + z2 / (2.0 * nf)) / denom;
    let half = z * (p * (1.0 - p) / nf + z2 / (4.0 * nf * nf)).sqrt() / denom;
    Some(Proportion { k, n, p, lo: (centre - half).max(0.0), hi: (centre + half).min(1.0) })
}

/// One step of a Kaplan-Meier curve.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KmStep {
    /// Time of the events.
    pub time: f64,
    /// At risk just before it.
    pub at_risk: u64,
    /// Events at this time.
    pub events: u64,
    /// Censored at this time (after the events).
    pub censored: u64,
    /// Survival just after it.
    pub survival: f64,
    /// 95 % interval (log-log transform).
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// A Kaplan-Meier estimate.
#[derive(Clone, Debug, PartialEq)]
pub struct KaplanMeier {
    /// Steps at each time with an event or a censoring.
    pub steps: Vec<KmStep>,
    /// Median time (first time survival is at or below 0.5), if reached.
    pub median: Option<f64>,
    /// Subjects.
    pub n: u64,
    /// Events.
    pub events: u64,
}

/// Kaplan-Meier survival of `(time, event)` observations (event false = censored at that time).
/// At a tie, events come before censorings (the usual convention).
pub fn kaplan_meier(obs: &[(f64, bool)], z: f64) -> KaplanMeier {
    let mut sorted: Vec<(f64, bool)> = obs.iter().copied().filter(|(t, _)| t.is_finite() && *t >= 0.0).collect();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
    let n = sorted.len() as u64;
    let mut at_risk = n;
    let mut survival = 1.0;
    let mut greenwood = 0.0;
    let mut steps = Vec::new();
    let mut median = None;
    let mut i = 0;
    while i < sorted.len() {
        let t = sorted[i].0;
        let mut d = 0u64;
        let mut c = 0u64;
        while i < sorted.len() && sorted[i].0.to_bits() == t.to_bits() {
            if sorted[i].1 {
                d += 1;
            } else {
                c += 1;
            }
            i += 1;
        }
        if d > 0 {
            survival *= 1.0 - d as f64 / at_risk as f64;
            if at_risk > d {
                greenwood += d as f64 / (at_risk as f64 * (at_risk - d) as f64);
            }
        }
        let (lo, hi) = if survival > 0.0 && survival < 1.0 {
            let ls = survival.ln();
            let se = (greenwood / (ls * ls)).sqrt();
            (survival.powf((z * se).exp()), survival.powf((-z * se).exp()))
        } else {
            (survival, survival)
        };
        if median.is_none() && survival <= 0.5 {
            median = Some(t);
        }
        steps.push(KmStep { time: t, at_risk, events: d, censored: c, survival, lo, hi });
        at_risk -= d + c;
    }
    let events = sorted.iter().filter(|o| o.1).count() as u64;
    KaplanMeier { steps, median, n, events }
}

/// A fitted logistic regression.
#[derive(Clone, Debug, PartialEq)]
pub struct Logistic {
    /// Coefficients (intercept first).
    pub beta: Vec<f64>,
    /// Standard errors.
    pub se: Vec<f64>,
    /// Iterations used.
    pub iterations: usize,
    /// Whether it converged.
    pub converged: bool,
    /// A coefficient ran away (complete or quasi-complete separation): estimates unreliable.
    pub separation: bool,
}

impl Logistic {
    /// Odds ratio of coefficient `j` with its 95 % Wald interval.
    pub fn odds_ratio(&self, j: usize, z: f64) -> (f64, f64, f64) {
        let b = self.beta[j];
        let s = self.se[j];
        (b.exp(), (b - z * s).exp(), (b + z * s).exp())
    }
}

/// Fits `P(y) = 1 / (1 + e^-(b0 + b . x))` by iteratively reweighted least squares. `x` holds one
/// row of covariates per subject (without the intercept). None when the data cannot be fitted
/// (no rows, rows of different lengths, or a singular information matrix).
pub fn logistic(x: &[Vec<f64>], y: &[bool]) -> Option<Logistic> {
    let n = x.len();
    if n == 0 || n != y.len() {
        return None;
    }
    let k = x[0].len() + 1;
    if x.iter().any(|r| r.len() + 1 != k || r.iter().any(|v| !v.is_finite())) {
        return None;
    }
    let row = |i: usize| std::iter::once(1.0).chain(x[i].iter().copied());
    let mut beta = vec![0.0; k];
    let mut info_inv = Vec::new();
    let mut converged = false;
    let mut iterations = 0;
    for it in 1..=100 {
        iterations = it;
        let mut info = vec![vec![0.0; k]; k];
        let mut score = vec![0.0; k];
        for (i, yi) in y.iter().enumerate() {
            let eta: f64 = row(i).zip(&beta).map(|(a, b)| a * b).sum();
            let p = 1.0 / (1.0 + (-eta).exp());
            let w = (p * (1.0 - p)).max(1e-12);
            let r: Vec<f64> = row(i).collect();
            let yi = if *yi { 1.0 } else { 0.0 };
            for a in 0..k {
                score[a] += r[a] * (yi - p);
                for b in 0..k {
                    info[a][b] += w * r[a] * r[b];
                }
            }
        }
        info_inv = invert(&info)?;
        let step: Vec<f64> = (0..k).map(|a| (0..k).map(|b| info_inv[a][b] * score[b]).sum()).collect();
        for a in 0..k {
            beta[a] += step[a];
        }
        if step.iter().map(|s| s.abs()).fold(0.0, f64::max) < 1e-10 {
            converged = true;
            break;
        }
        if beta.iter().any(|b| b.abs() > 30.0) {
            break;
        }
    }
    let se = (0..k).map(|a| info_inv[a][a].max(0.0).sqrt()).collect();
    let separation = !converged || beta.iter().any(|b| b.abs() > 15.0);
    Some(Logistic { beta, se, iterations, converged, separation })
}

/// Inverse of a small symmetric positive-definite matrix by Gauss-Jordan elimination with
/// partial pivoting (None when singular).
fn invert(m: &[Vec<f64>]) -> Option<Vec<Vec<f64>>> {
    let k = m.len();
    let mut a: Vec<Vec<f64>> = m.to_vec();
    let mut inv: Vec<Vec<f64>> = (0..k).map(|i| (0..k).map(|j| if i == j { 1.0 } else { 0.0 }).collect()).collect();
    let scale = m.iter().flatten().fold(0.0f64, |s, v| s.max(v.abs())).max(1e-300);
    for c in 0..k {
        let pivot = (c..k).max_by(|&i, &j| a[i][c].abs().total_cmp(&a[j][c].abs()))?;
        if a[pivot][c].abs() < 1e-12 * scale {
            return None;
        }
        a.swap(c, pivot);
        inv.swap(c, pivot);
        let d = a[c][c];
        for j in 0..k {
            a[c][j] /= d;
            inv[c][j] /= d;
        }
        for i in 0..k {
            if i != c {
                let f = a[i][c];
                if f != 0.0 {
                    for j in 0..k {
                        a[i][j] -= f * a[c][j];
                        inv[i][j] -= f * inv[c][j];
                    }
                }
            }
        }
    }
    Some(inv)
}

/// A mean with its normal-approximation interval (mean ± z·SD/√n).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MeanCi {
    /// Values.
    pub n: u64,
    /// Mean.
    pub mean: f64,
    /// Sample standard deviation (n − 1).
    pub sd: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// Mean, SD and interval of `values` (None when empty; the interval is the mean itself for n = 1).
pub fn mean_ci(values: &[f64], z: f64) -> Option<MeanCi> {
    let v: Vec<f64> = values.iter().copied().filter(|x| x.is_finite()).collect();
    if v.is_empty() {
        return None;
    }
    let n = v.len() as f64;
    let mean = v.iter().sum::<f64>() / n;
    let sd = if v.len() > 1 { (v.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0)).sqrt() } else { 0.0 };
    let half = z * sd / n.sqrt();
    Some(MeanCi { n: v.len() as u64, mean, sd, lo: mean - half, hi: mean + half })
}

/// A count of events over an exposure, as a rate per `per` units with an interval.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Rate {
    /// Events.
    pub events: u64,
    /// Exposure (e.g. sessions).
    pub exposure: u64,
    /// Events per `per` units of exposure.
    pub rate: f64,
    /// Lower bound.
    pub lo: f64,
    /// Upper bound.
    pub hi: f64,
}

/// Poisson rate of `events` over `exposure`, per `per`, with Byar's approximation to the exact
/// interval (Rothman and Boice 1979; close to exact from a single event on). None when the
/// exposure is 0.
pub fn poisson_rate(events: u64, exposure: u64, per: f64, z: f64) -> Option<Rate> {
    if exposure == 0 {
        return None;
    }
    let k = events as f64;
    let lo_count = if events == 0 { 0.0 } else { k * (1.0 - 1.0 / (9.0 * k) - z / (3.0 * k.sqrt())).powi(3) };
    let k1 = k + 1.0;
    let hi_count = k1 * (1.0 - 1.0 / (9.0 * k1) + z / (3.0 * k1.sqrt())).powi(3);
    let scale = per / exposure as f64;
    Some(Rate { events, exposure, rate: k * scale, lo: lo_count.max(0.0) * scale, hi: hi_count * scale })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn near(a: f64, b: f64, tol: f64) -> bool {
        (a - b).abs() <= tol
    }

    #[test]
    fn wilson_matches_the_textbook_interval() {
        // 8 of 20: 0.2188-0.6134 (Newcombe 1998, Stat Med 17:857, method 3).
        let p = wilson(8, 20, Z95).unwrap();
        assert!(near(p.lo, 0.2188, 1e-4) && near(p.hi, 0.6134, 1e-4), "{p:?}");
        // 0 of 10: 0-0.2775; 10 of 10: 0.7225-1.
        let z = wilson(0, 10, Z95).unwrap();
        assert!(near(z.lo, 0.0, 1e-12) && near(z.hi, 0.2775, 1e-4));
        let a = wilson(10, 10, Z95).unwrap();
        assert!(near(a.lo, 0.7225, 1e-4) && near(a.hi, 1.0, 1e-12));
        assert!(wilson(1, 0, Z95).is_none() && wilson(3, 2, Z95).is_none());
    }

    #[test]
    fn kaplan_meier_steps_greenwood_and_median() {
        // Times 1, 2, 2+, 3, 4+, 5 (+ censored).
        let obs = [(1.0, true), (2.0, true), (2.0, false), (3.0, true), (4.0, false), (5.0, true)];
        let km = kaplan_meier(&obs, Z95);
        let s: Vec<(f64, u64, f64)> = km.steps.iter().map(|x| (x.time, x.at_risk, x.survival)).collect();
        let want = [(1.0, 6, 5.0 / 6.0), (2.0, 5, 4.0 / 6.0), (3.0, 3, 4.0 / 9.0), (4.0, 2, 4.0 / 9.0), (5.0, 1, 0.0)];
        for (g, w) in s.iter().zip(want) {
            assert!(near(g.0, w.0, 0.0) && g.1 == w.1 && near(g.2, w.2, 1e-12), "{g:?} vs {w:?}");
        }
        assert_eq!(km.median, Some(3.0));
        assert_eq!((km.n, km.events), (6, 4));
        // Greenwood at t = 1: var = S^2 x 1/(6 x 5); log-log interval around 5/6.
        let st = km.steps[0];
        let ls = st.survival.ln();
        let se = ((1.0 / 30.0) / (ls * ls)).sqrt();
        assert!(near(st.lo, st.survival.powf((Z95 * se).exp()), 1e-12) && st.lo < st.survival && st.hi > st.survival && st.hi <= 1.0);
        // No events: survival stays 1 and there is no median.
        let none = kaplan_meier(&[(3.0, false), (5.0, false)], Z95);
        assert!(none.median.is_none() && none.steps.iter().all(|s| near(s.survival, 1.0, 0.0)));
    }

    #[test]
    fn logistic_with_one_binary_covariate_is_the_log_odds_ratio() {
        // 2 x 2 table: exposed 12 responders / 8 not, unexposed 5 / 15.
        let mut x = Vec::new();
        let mut y = Vec::new();
        for (exp, resp, count) in [(1.0, true, 12), (1.0, false, 8), (0.0, true, 5), (0.0, false, 15)] {
            for _ in 0..count {
                x.push(vec![exp]);
                y.push(resp);
            }
        }
        let fit = logistic(&x, &y).unwrap();
        assert!(fit.converged && !fit.separation);
        let log_or = ((12.0f64 * 15.0) / (8.0 * 5.0)).ln();
        let se = (1.0 / 12.0 + 1.0 / 8.0 + 1.0 / 5.0 + 1.0 / 15.0f64).sqrt();
        assert!(near(fit.beta[1], log_or, 1e-9) && near(fit.se[1], se, 1e-9), "{fit:?}");
        assert!(near(fit.beta[0], (5.0f64 / 15.0).ln(), 1e-9));
        let (or, lo, hi) = fit.odds_ratio(1, Z95);
        assert!(near(or, 4.5, 1e-9) && lo < or && hi > or);
    }

    #[test]
    fn logistic_flags_separation_and_refuses_bad_data() {
        let x: Vec<Vec<f64>> = (0..10).map(|i| vec![f64::from(i)]).collect();
        let y: Vec<bool> = (0..10).map(|i| i >= 5).collect();
        let fit = logistic(&x, &y).unwrap();
        assert!(fit.separation, "a covariate that splits the outcome perfectly: {fit:?}");
        assert!(logistic(&[], &[]).is_none());
        assert!(logistic(&[vec![1.0], vec![1.0, 2.0]], &[true, false]).is_none());
        // A constant covariate makes the information matrix singular.
        assert!(logistic(&[vec![1.0], vec![1.0], vec![1.0]], &[true, false, true]).is_none());
    }

    #[test]
    fn mean_interval_by_hand() {
        // 2, 4, 4, 4, 5, 5, 7, 9: mean 5, sample SD sqrt(32/7) = 2.138; half-width 1.96*2.138/sqrt(8) = 1.4816.
        let m = mean_ci(&[2.0, 4.0, 4.0, 4.0, 5.0, 5.0, 7.0, 9.0], Z95).unwrap();
        assert_eq!(m.n, 8);
        assert!((m.mean - 5.0).abs() < 1e-12);
        assert!((m.sd - (32.0f64 / 7.0).sqrt()).abs() < 1e-12);
        assert!((m.hi - m.mean - 1.4816).abs() < 1e-3, "{m:?}");
        assert!(mean_ci(&[], Z95).is_none());
        assert!((mean_ci(&[3.0], Z95).unwrap().lo - 3.0).abs() < 1e-12);
    }

    #[test]
    fn poisson_rate_is_close_to_the_exact_interval() {
        // Exact 95 % Poisson limits for 10 events: 4.795 to 18.39 (Garwood; standard tables).
        let r = poisson_rate(10, 100, 100.0, Z95).unwrap();
        assert!((r.rate - 10.0).abs() < 1e-12);
        assert!((r.lo - 4.795).abs() < 0.02, "{r:?}");
        assert!((r.hi - 18.39).abs() < 0.03, "{r:?}");
        // Zero events: lower 0, upper 3.689 (exact) per exposure.
        let z = poisson_rate(0, 1, 1.0, Z95).unwrap();
        assert!(z.lo.abs() < 1e-12);
        assert!((z.hi - 3.689).abs() < 0.05, "{z:?}");
        assert!(poisson_rate(1, 0, 100.0, Z95).is_none());
    }
}
