//! Convolutions of decaying exponentials, evaluated stably.
//!
//! Every output of a linear compartment model is a sum of terms of the form
//! `gain * (e^(-r0 t) * e^(-r1 t) * ... * e^(-rn t))(t)`, where `*` is convolution: an impulse
//! passes through a chain of first-order stages (an absorption depot, one exponential of the
//! disposition, the effect site, an integral). The textbook partial-fraction form
//! `sum c_i e^(-r_i t)` with `c_i = 1 / prod (r_j - r_i)` divides by zero when two rates are equal
//! (ka = a hybrid rate, ke0 = ka) and loses every digit when they are merely close.
//!
//! [`conv`] evaluates the chain exactly instead: it is `(-1)^n` times the divided difference of
//! `x -> e^(-x t)` over the rates, computed by a Taylor series around the smallest rate when the
//! rates are close (spread times t at most 1, where the series converges fast and without
//! cancellation) and by the divided-difference recursion otherwise (where the subtraction loses
//! at most a digit). Equal rates are the confluent limit `t^n e^(-r t) / n!`, which the series
//! gives exactly. A rate of 0 is a step (a constant infusion) or an integral (an AUC).

/// The longest chain the engine builds: depot or infusion step, disposition exponential,
/// effect site, integral, and one spare.
pub const MAX_RATES: usize = 6;

/// Terms of the Taylor series; with spread x t <= 1 the k-th term is below 1/k!, and
/// 1/24! is 1.6e-24.
const SERIES_TERMS: usize = 24;

/// Value at `t >= 0` of the convolution of `e^(-r t)` over `rates` (each rate >= 0, at most
/// [`MAX_RATES`] of them). One rate: `e^(-r t)`. Zero at `t = 0` for two or more rates.
pub fn conv(rates: &[f64], t: f64) -> f64 {
    let n = rates.len();
    assert!((1..=MAX_RATES).contains(&n), "a chain has 1 to {MAX_RATES} stages");
    let mut r = [0.0; MAX_RATES];
    r[..n].copy_from_slice(rates);
    r[..n].sort_by(f64::total_cmp);
    sorted(&r[..n], t)
}

fn sorted(r: &[f64], t: f64) -> f64 {
    let n = r.len();
    if n == 1 {
        return (-r[0] * t).exp();
    }
    if t <= 0.0 {
        return 0.0;
    }
    let spread = r[n - 1] - r[0];
    if spread * t <= 1.0 {
        series(r, t)
    } else {
        // A convolution of positive functions is positive; rounding must not make it negative.
        ((sorted(&r[..n - 1], t) - sorted(&r[1..], t)) / spread).max(0.0)
    }
}

/// `e^(-r0 t) t^m sum_k (-t)^k h_k(d) / (m + k)!`, with `d_j = r_j - r0` and `h_k` the complete
/// homogeneous symmetric polynomial of degree k (m = number of rates - 1).
fn series(r: &[f64], t: f64) -> f64 {
    let m = r.len() - 1;
    // h[k] over the scaled offsets d_j t (each in [0, 1]).
    let mut h = [0.0f64; SERIES_TERMS];
    h[0] = 1.0;
    for &rj in &r[1..] {
        let d = (rj - r[0]) * t;
        for k in 1..SERIES_TERMS {
            h[k] += d * h[k - 1];
        }
    }
    // 1/(m+k)! and t^m / m!.
    let mut fact = 1.0f64;
    for i in 1..=m {
        fact *= i as f64;
    }
    let mut sum = 0.0;
    let mut inv = 1.0 / fact;
    let mut sign = 1.0;
    for (k, hk) in h.iter().enumerate() {
        let term = sign * hk * inv;
        sum += term;
        if term.abs() < 1e-18 * sum.abs() && k > 2 {
            break;
        }
        sign = -sign;
        inv /= (m + k + 1) as f64;
    }
    (-r[0] * t).exp() * t.powi(m as i32) * sum
}

#[cfg(test)]
mod tests {
    use super::*;

    fn close(a: f64, b: f64, rel: f64) -> bool {
        (a - b).abs() <= rel * a.abs().max(b.abs()).max(1e-300)
    }

    #[test]
    fn one_rate_is_an_exponential() {
        assert!(close(conv(&[0.3], 2.0), (-0.6f64).exp(), 1e-15));
        assert!(close(conv(&[0.0], 5.0), 1.0, 0.0));
    }

    #[test]
    fn two_distinct_rates_match_partial_fractions() {
        for &(a, b, t) in &[(0.1f64, 0.7f64, 3.0f64), (0.0069, 1.72, 100.0), (0.5, 0.6, 0.5), (2.0, 0.01, 40.0)] {
            let pf = ((-a * t).exp() - (-b * t).exp()) / (b - a);
            assert!(close(conv(&[a, b], t), pf, 1e-13), "{a} {b} {t}");
        }
    }

    #[test]
    fn equal_rates_are_the_confluent_limit() {
        let (k, t) = (0.1, 7.0);
        assert!(close(conv(&[k, k], t), t * (-k * t).exp(), 1e-15));
        assert!(close(conv(&[k, k, k], t), t * t / 2.0 * (-k * t).exp(), 1e-15));
        // A step and an integral: t^2/2.
        assert!(close(conv(&[0.0, 0.0, 0.0], 3.0), 4.5, 1e-15));
        // Nearly equal rates agree with the limit to first order.
        let near = conv(&[k, k * (1.0 + 1e-12)], t);
        assert!(close(near, t * (-k * t).exp(), 1e-11));
    }

    #[test]
    fn three_rates_match_partial_fractions_when_well_separated() {
        let (a, b, c, t) = (0.01f64, 0.2f64, 1.5f64, 30.0f64);
        let pf = (-a * t).exp() / ((b - a) * (c - a)) + (-b * t).exp() / ((a - b) * (c - b)) + (-c * t).exp() / ((a - c) * (b - c));
        assert!(close(conv(&[c, a, b], t), pf, 1e-12));
    }

    #[test]
    fn step_convolved_with_an_exponential_is_the_infusion_rise() {
        let (l, t) = (0.0060475, 40.0);
        assert!(close(conv(&[0.0, l], t), -(-l * t).exp_m1() / l, 1e-14));
    }

    #[test]
    fn never_negative_and_finite_over_wide_ranges() {
        let rates = [0.0, 1e-6, 0.0146, 0.652, 1.72, 30.0];
        for t in [0.0, 1e-9, 0.01, 1.0, 60.0, 1440.0, 1e5] {
            for n in 1..=rates.len() {
                for start in 0..=(rates.len() - n) {
                    let v = conv(&rates[start..start + n], t);
                    assert!(v.is_finite() && v >= 0.0, "{:?} {t} -> {v}", &rates[start..start + n]);
                }
            }
        }
    }
}
