//! Disposition models: micro constants, hybrid rates and unit-impulse coefficients, and the
//! published model sets with their covariates, populations and evidence.

use super::PkError;

/// Micro constants of a linear mammillary model (volume in L, rates per minute).
///
/// A model with fewer compartments has the unused pairs at zero.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Micro {
    /// Central volume, L.
    pub v1_l: f64,
    /// Elimination from the central compartment, per min.
    pub k10: f64,
    /// Central to second compartment, per min.
    pub k12: f64,
    /// Second compartment to central, per min.
    pub k21: f64,
    /// Central to third compartment, per min.
    pub k13: f64,
    /// Third compartment to central, per min.
    pub k31: f64,
}

impl Micro {
    /// From volumes (L) and clearances (L/min); `None` for an absent compartment.
    pub fn from_volumes(v1_l: f64, cl_l_per_min: f64, second: Option<(f64, f64)>, third: Option<(f64, f64)>) -> Micro {
        let (k12, k21) = second.map(|(v, q)| (q / v1_l, q / v)).unwrap_or((0.0, 0.0));
        let (k13, k31) = third.map(|(v, q)| (q / v1_l, q / v)).unwrap_or((0.0, 0.0));
        Micro { v1_l, k10: cl_l_per_min / v1_l, k12, k21, k13, k31 }
    }

    /// Elimination clearance, L/min.
    pub fn clearance_l_per_min(&self) -> f64 {
        self.k10 * self.v1_l
    }

    /// Number of compartments (1 to 3).
    pub fn compartments(&self) -> usize {
        1 + usize::from(self.k12 > 0.0) + usize::from(self.k13 > 0.0)
    }

    /// Volume of the second and third compartments (0 when absent), L.
    pub fn peripheral_volumes_l(&self) -> (f64, f64) {
        let v = |k1m: f64, km1: f64| if k1m > 0.0 { self.v1_l * k1m / km1 } else { 0.0 };
        (v(self.k12, self.k21), v(self.k13, self.k31))
    }

    /// Checks the constants: finite, positive volume and elimination, and each peripheral pair
    /// either both zero or both positive (a compartment that only fills would hold drug for ever).
    pub fn check(&self) -> Result<(), PkError> {
        let all = [self.v1_l, self.k10, self.k12, self.k21, self.k13, self.k31];
        if all.iter().any(|v| !v.is_finite() || *v < 0.0) {
            return Err(PkError::Model("every micro constant must be a finite number of 0 or more".into()));
        }
        if self.v1_l <= 0.0 || self.k10 <= 0.0 {
            return Err(PkError::Model("the central volume and the elimination rate k10 must be above 0".into()));
        }
        if (self.k12 > 0.0) != (self.k21 > 0.0) || (self.k13 > 0.0) != (self.k31 > 0.0) {
            return Err(PkError::Model("each peripheral compartment needs both of its rates (k12 with k21, k13 with k31)".into()));
        }
        if self.k12 == 0.0 && self.k13 > 0.0 {
            return Err(PkError::Model("a third compartment needs a second one (give k12 and k21 first)".into()));
        }
        Ok(())
    }

    /// Hybrid rates and unit-impulse coefficients: a 1 mg IV bolus gives
    /// `Cp(t) = sum C_i e^(-lambda_i t)` mg/L.
    pub fn disposition(&self) -> Result<Disposition, PkError> {
        self.check()?;
        let mut lambdas = [0.0; 3];
        let n = self.compartments();
        match n {
            1 => lambdas[0] = self.k10,
            2 => {
                let s = self.k10 + self.k12 + self.k21;
                let p = self.k10 * self.k21;
                let l1 = 0.5 * (s + (s * s - 4.0 * p).max(0.0).sqrt());
                lambdas[0] = l1;
                // The product of the roots is k10 k21; dividing avoids the cancellation of s - sqrt.
                lambdas[1] = p / l1;
            }
            _ => {
                let (k10, k12, k21, k13, k31) = (self.k10, self.k12, self.k21, self.k13, self.k31);
                let a2 = k10 + k12 + k13 + k21 + k31;
                let a1 = k10 * k21 + k10 * k31 + k12 * k31 + k13 * k21 + k21 * k31;
                let a0 = k10 * k21 * k31;
                let p = a1 - a2 * a2 / 3.0;
                let q = -2.0 * a2 * a2 * a2 / 27.0 + a1 * a2 / 3.0 - a0;
                let m = 2.0 * (-p / 3.0).max(0.0).sqrt();
                let arg = if p < 0.0 { ((3.0 * q / (2.0 * p)) * (-3.0 / p).sqrt()).clamp(-1.0, 1.0) } else { 0.0 };
                let theta = arg.acos() / 3.0;
                for (k, l) in lambdas.iter_mut().enumerate() {
                    *l = m * (theta - 2.0 * std::f64::consts::PI * k as f64 / 3.0).cos() + a2 / 3.0;
                }
                // Newton polish on the cubic, then sort descending.
                for l in lambdas.iter_mut() {
                    for _ in 0..3 {
                        let f = ((*l - a2) * *l + a1) * *l - a0;
                        let df = (3.0 * *l - 2.0 * a2) * *l + a1;
                        if df != 0.0 {
                            let next = *l - f / df;
                            if next.is_finite() && next > 0.0 {
                                *l = next;
                            }
                        }
                    }
                }
                lambdas.sort_by(|a, b| b.total_cmp(a));
                // The smallest root loses relative precision in the trigonometric form; the product
                // of the roots is a0 exactly.
                lambdas[2] = a0 / (lambdas[0] * lambdas[1]);
            }
        }
        let mut coefs = [0.0; 3];
        for i in 0..n {
            let li = lambdas[i];
            let mut num = 1.0 / self.v1_l;
            if n >= 2 {
                num *= self.k21 - li;
            }
            if n >= 3 {
                num *= self.k31 - li;
            }
            let mut den = 1.0;
            for (j, lj) in lambdas.iter().enumerate().take(n) {
                if j != i {
                    den *= lj - li;
                }
            }
            coefs[i] = if den == 0.0 { 0.0 } else { num / den };
        }
        if lambdas[..n].iter().chain(&coefs[..n]).any(|v| !v.is_finite()) || lambdas[..n].iter().any(|l| *l <= 0.0) {
            return Err(PkError::Model("the micro constants give no stable solution".into()));
        }
        Ok(Disposition { n, lambdas, coefs, micro: *self })
    }
}

/// Hybrid rates (descending) and the unit-impulse coefficients of plasma concentration.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Disposition {
    /// Number of exponentials (compartments).
    pub n: usize,
    /// Hybrid rates, per min, largest first.
    pub lambdas: [f64; 3],
    /// Plasma concentration per mg of IV bolus, 1/L.
    pub coefs: [f64; 3],
    /// The micro constants these came from.
    pub micro: Micro,
}

impl Disposition {
    /// Terminal half-life, min.
    pub fn terminal_half_life_min(&self) -> f64 {
        std::f64::consts::LN_2 / self.lambdas[self.n - 1]
    }
}

/// Racemic ketamine or S-ketamine (esketamine).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Analyte {
    /// Racemic ketamine (R and S).
    Racemic,
    /// S-ketamine only.
    SKetamine,
}

impl Analyte {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Analyte::Racemic => "racemic",
            Analyte::SKetamine => "s-ketamine",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Option<Analyte> {
        match s.trim().to_ascii_lowercase().as_str() {
            "racemic" | "ketamine" => Some(Analyte::Racemic),
            "s-ketamine" | "esketamine" | "s" => Some(Analyte::SKetamine),
            _ => None,
        }
    }
    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            Analyte::Racemic => "racemic ketamine",
            Analyte::SKetamine => "S-ketamine (esketamine)",
        }
    }
}

/// How well a value is supported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Evidence {
    /// Read in the primary abstract or a source-traced model file.
    Verified,
    /// From a public implementation whose link to the paper could not be checked.
    Code,
    /// From a review or summary.
    Secondary,
    /// Our own choice, to be replaced.
    Assumed,
}

impl Evidence {
    /// Stable code.
    pub fn code(self) -> &'static str {
        match self {
            Evidence::Verified => "verified",
            Evidence::Code => "code",
            Evidence::Secondary => "secondary",
            Evidence::Assumed => "assumed",
        }
    }
    /// Parses a code.
    pub fn parse(s: &str) -> Option<Evidence> {
        match s.trim() {
            "verified" => Some(Evidence::Verified),
            "code" => Some(Evidence::Code),
            "secondary" => Some(Evidence::Secondary),
            "assumed" => Some(Evidence::Assumed),
            _ => None,
        }
    }
    /// Words for people.
    pub fn label(self) -> &'static str {
        match self {
            Evidence::Verified => "verified in the primary source",
            Evidence::Code => "from a public implementation, not checked against the paper",
            Evidence::Secondary => "from a review or summary",
            Evidence::Assumed => "ASSUMED (no published estimate; to be replaced)",
        }
    }
}

/// One parameter of a physiological model at the reference weight, with its allometric
/// exponent (0 = not scaled) and between-subject variability (coefficient of variation).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scaled {
    /// Value at the reference weight (L or L/min).
    pub value: f64,
    /// Exponent of (weight / reference weight).
    pub exponent: f64,
    /// Between-subject variability as a coefficient of variation, when published.
    pub bsv_cv: Option<f64>,
}

impl Scaled {
    fn at(&self, weight_kg: f64, reference_kg: f64, eta: f64) -> f64 {
        self.value * (weight_kg / reference_kg).powf(self.exponent) * eta.exp()
    }
}

/// How a model's constants follow from the patient.
#[derive(Clone, Debug, PartialEq)]
pub enum Parameters {
    /// Fixed micro constants; the central volume is per kg of body weight.
    PerKg {
        /// Central volume, L/kg.
        v1_l_per_kg: f64,
        /// Micro constants per min (V1 ignored).
        micro: Micro,
    },
    /// Volumes and clearances at a reference weight, scaled allometrically.
    Physiological {
        /// Reference weight, kg.
        reference_kg: f64,
        /// Central volume.
        v1: Scaled,
        /// Elimination clearance (L/min).
        cl: Scaled,
        /// Second compartment volume and intercompartmental clearance.
        second: Option<(Scaled, Scaled)>,
        /// Third compartment volume and intercompartmental clearance.
        third: Option<(Scaled, Scaled)>,
    },
}

/// Random effects of one simulated subject, in the order v1, cl, v2, q2, v3, q3 (log scale).
pub type Etas = [f64; 6];

/// A published disposition model with what the product must say about it.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelSpec {
    /// Stable identifier ("domino", "herd-2007", ...).
    pub id: String,
    /// Short name.
    pub name: String,
    /// What the model predicts.
    pub analyte: Analyte,
    /// Blood sampling of the source data (arterial, venous, not stated).
    pub sampling: String,
    /// Who the model was fitted on.
    pub population: String,
    /// Whether the population was adults.
    pub adult_population: bool,
    /// Weights the model was fitted on, kg.
    pub weight_range_kg: (f64, f64),
    /// Ages the model was fitted on, years.
    pub age_range_years: (f64, f64),
    /// How the constants follow from weight.
    pub parameters: Parameters,
    /// Evidence status of the numbers.
    pub evidence: Evidence,
    /// Where the numbers come from.
    pub citation: String,
    /// What to keep in mind.
    pub notes: String,
}

impl ModelSpec {
    /// Micro constants for a patient of this weight, with optional random effects.
    pub fn micro(&self, weight_kg: f64, etas: Option<&Etas>) -> Micro {
        let e = etas.copied().unwrap_or([0.0; 6]);
        match &self.parameters {
            Parameters::PerKg { v1_l_per_kg, micro } => Micro { v1_l: v1_l_per_kg * weight_kg * e[0].exp(), ..*micro },
            Parameters::Physiological { reference_kg, v1, cl, second, third } => {
                let w = weight_kg;
                let r = *reference_kg;
                Micro::from_volumes(
                    v1.at(w, r, e[0]),
                    cl.at(w, r, e[1]),
                    second.map(|(v, q)| (v.at(w, r, e[2]), q.at(w, r, e[3]))),
                    third.map(|(v, q)| (v.at(w, r, e[4]), q.at(w, r, e[5]))),
                )
            }
        }
    }

    /// Log-scale standard deviations of the random effects (order of [`Etas`]), when the model
    /// publishes between-subject variability: omega = sqrt(ln(1 + CV^2)).
    pub fn omegas(&self) -> Option<[f64; 6]> {
        let Parameters::Physiological { v1, cl, second, third, .. } = &self.parameters else {
            return None;
        };
        let om = |s: &Scaled| s.bsv_cv.map(|cv| (1.0 + cv * cv).ln().sqrt()).unwrap_or(0.0);
        let mut out = [om(v1), om(cl), 0.0, 0.0, 0.0, 0.0];
        if let Some((v, q)) = second {
            out[2] = om(v);
            out[3] = om(q);
        }
        if let Some((v, q)) = third {
            out[4] = om(v);
            out[5] = om(q);
        }
        out.iter().any(|o| *o > 0.0).then_some(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn domino_70() -> Micro {
        Micro { v1_l: 0.063 * 70.0, k10: 0.4381, k12: 0.5921, k21: 0.2470, k13: 0.5900, k31: 0.0146 }
    }

    #[test]
    fn domino_hybrid_rates_and_coefficients_match_the_reference() {
        let d = domino_70().disposition().unwrap();
        let l = [1.72424, 0.151513, 0.0060475];
        let c = [0.21193, 0.012958, 0.0018696];
        for i in 0..3 {
            assert!((d.lambdas[i] - l[i]).abs() / l[i] < 1e-5, "lambda {i}: {}", d.lambdas[i]);
            assert!((d.coefs[i] - c[i]).abs() / c[i] < 1e-4, "C {i}: {}", d.coefs[i]);
        }
        // The coefficients sum to 1/V1 (concentration right after a 1 mg bolus).
        let sum: f64 = d.coefs.iter().sum();
        assert!((sum - 1.0 / 4.41).abs() < 1e-14);
        // Terminal half-life about 115 min.
        assert!((d.terminal_half_life_min() - 114.6).abs() < 0.5);
    }

    #[test]
    fn two_and_one_compartment_rates() {
        let m = Micro { v1_l: 10.0, k10: 0.1, k12: 0.3, k21: 0.2, k13: 0.0, k31: 0.0 };
        let d = m.disposition().unwrap();
        assert!((d.lambdas[0] * d.lambdas[1] - 0.1 * 0.2).abs() < 1e-16);
        assert!((d.lambdas[0] + d.lambdas[1] - 0.6).abs() < 1e-15);
        let one = Micro { v1_l: 10.0, k10: 0.1, k12: 0.0, k21: 0.0, k13: 0.0, k31: 0.0 }.disposition().unwrap();
        assert_eq!(one.n, 1);
        assert!((one.coefs[0] - 0.1).abs() < 1e-16);
    }

    #[test]
    fn impossible_constants_are_refused() {
        let good = domino_70();
        for bad in [
            Micro { v1_l: 0.0, ..good },
            Micro { k10: -1.0, ..good },
            Micro { k21: 0.0, ..good },
            Micro { k12: f64::NAN, ..good },
            Micro { k12: 0.0, k21: 0.0, ..good },
        ] {
            assert!(bad.disposition().is_err(), "{bad:?}");
        }
    }
}
