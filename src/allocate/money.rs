//! Exact money arithmetic in integer micro-units.
//!
//! Every split here conserves its amount to the micro-unit: the parts always sum to the whole,
//! whatever the weights, and the result depends only on the inputs (never on float rounding or
//! iteration order of a hash map).

use std::cmp::Reverse;

use crate::standard::records::Micros;

/// Splits `amount` into parts proportional to `weights`, exactly.
///
/// Largest remainder method (Hamilton): every part first gets the floor of its exact share of
/// `|amount|`, then the micro-units left over go one each to the parts with the largest
/// remainders, ties to the lower index. The sign of `amount` is applied afterwards, so a credit
/// (negative amount) splits as the mirror image of the matching charge: parts are rounded toward
/// zero, never away from it.
///
/// Guarantees:
/// - the parts sum to `amount` exactly, when at least one weight is non-zero;
/// - every part is within one micro-unit of its exact real-valued share;
/// - parts with zero weight get `0`;
/// - no overflow for any `amount` and weights whose sum fits in a `u128` (e.g. up to 2^100 each).
///
/// When all weights are zero, or `weights` is empty, there is nothing to split by: the result is
/// all zeros (and does **not** sum to `amount`). The caller decides where such an amount goes.
///
/// # Panics
///
/// When the sum of `weights` overflows `u128`.
///
/// # Example
///
/// ```
/// use usage_tracker::allocate::money::split_proportionally;
///
/// // 100 micro-units in three equal parts: the leftover unit goes to the first part.
/// assert_eq!(split_proportionally(100, &[1, 1, 1]), vec![34, 33, 33]);
/// // A credit splits like the charge, with the sign applied.
/// assert_eq!(split_proportionally(-100, &[1, 1, 1]), vec![-34, -33, -33]);
/// // Nothing to split by.
/// assert_eq!(split_proportionally(100, &[0, 0]), vec![0, 0]);
/// ```
pub fn split_proportionally(amount: Micros, weights: &[u128]) -> Vec<Micros> {
    let total = weights
        .iter()
        .try_fold(0u128, |sum, &w| sum.checked_add(w))
        .expect("sum of weights overflows u128");
    if total == 0 {
        return vec![0; weights.len()];
    }
    let magnitude = u128::from(amount.unsigned_abs());
    let shares: Vec<(u128, u128)> = weights
        .iter()
        .map(|&w| mul_div_rem(magnitude, w, total))
        .collect();
    let mut parts: Vec<u128> = shares.iter().map(|&(floor, _)| floor).collect();
    let leftover = magnitude - parts.iter().sum::<u128>();
    for index in largest_remainders(&shares, leftover) {
        parts[index] += 1;
    }
    parts
        .into_iter()
        .map(|part| with_sign(part, amount < 0))
        .collect()
}

/// Splits a charge over `[start, end)` (epoch ms) across the UTC-aligned tumbling windows of
/// `window_ms` it overlaps, by overlap in milliseconds.
///
/// A window starts at `floor(t / window_ms) * window_ms`. The result lists
/// `(window_start, amount)` in window order and sums exactly to `amount` (see
/// [`split_proportionally`]). When `end <= start` the charge is instantaneous and falls entirely
/// into the window containing `start`.
///
/// ```
/// use usage_tracker::allocate::money::apportion_over_windows;
///
/// const HOUR: i64 = 3_600_000;
/// // 00:30 to 02:15 overlaps three hourly windows by 30, 60 and 15 minutes.
/// let parts = apportion_over_windows(HOUR / 2, 2 * HOUR + HOUR / 4, 700, HOUR);
/// assert_eq!(parts, vec![(0, 200), (HOUR, 400), (2 * HOUR, 100)]);
/// ```
///
/// # Panics
///
/// When `window_ms <= 0`, or a window boundary does not fit in an `i64`.
pub fn apportion_over_windows(
    start: i64,
    end: i64,
    amount: Micros,
    window_ms: i64,
) -> Vec<(i64, Micros)> {
    assert!(window_ms > 0, "window_ms must be positive, got {window_ms}");
    let first = start.div_euclid(window_ms) * window_ms;
    if end <= start {
        return vec![(first, amount)];
    }
    let overlaps = window_overlaps(first, start, end, window_ms);
    let weights: Vec<u128> = overlaps.iter().map(|&(_, ms)| u128::from(ms)).collect();
    let parts = split_proportionally(amount, &weights);
    overlaps
        .iter()
        .zip(parts)
        .map(|(&(window, _), part)| (window, part))
        .collect()
}

/// `(window_start, overlap_ms)` of every window from `first` that `[start, end)` overlaps.
fn window_overlaps(first: i64, start: i64, end: i64, window_ms: i64) -> Vec<(i64, u64)> {
    let mut overlaps = Vec::new();
    let mut window = first;
    while window < end {
        let next = window
            .checked_add(window_ms)
            .expect("window boundary overflows i64");
        let overlap = next.min(end) - window.max(start);
        overlaps.push((window, overlap.unsigned_abs()));
        window = next;
    }
    overlaps
}

/// Indices of the `count` parts with the largest remainders, ties to the lower index.
fn largest_remainders(shares: &[(u128, u128)], count: u128) -> Vec<usize> {
    let mut order: Vec<usize> = (0..shares.len()).collect();
    order.sort_by_key(|&i| (Reverse(shares[i].1), i));
    let count = usize::try_from(count).unwrap_or(usize::MAX);
    order.truncate(count);
    order
}

/// `magnitude` as micros, negated when `negative`.
fn with_sign(magnitude: u128, negative: bool) -> Micros {
    let signed = if negative {
        -(magnitude as i128)
    } else {
        magnitude as i128
    };
    Micros::try_from(signed).expect("a part never exceeds the amount it is split from")
}

/// `(a * b / d, a * b % d)` without overflow, for `b <= d` (so the quotient fits in a `u128`).
fn mul_div_rem(a: u128, b: u128, d: u128) -> (u128, u128) {
    debug_assert!(b <= d && d > 0);
    if let Some(product) = a.checked_mul(b) {
        return (product / d, product % d);
    }
    let (high, low) = widening_mul(a, b);
    div_wide(high, low, d)
}

/// The 256-bit product of `a` and `b` as `(high, low)` halves.
fn widening_mul(a: u128, b: u128) -> (u128, u128) {
    const MASK: u128 = u64::MAX as u128;
    let (a_hi, a_lo) = (a >> 64, a & MASK);
    let (b_hi, b_lo) = (b >> 64, b & MASK);
    let lo_lo = a_lo * b_lo;
    let lo_hi = a_lo * b_hi;
    let hi_lo = a_hi * b_lo;
    let hi_hi = a_hi * b_hi;
    let middle = (lo_lo >> 64) + (lo_hi & MASK) + (hi_lo & MASK);
    let low = (lo_lo & MASK) | (middle << 64);
    let high = hi_hi + (lo_hi >> 64) + (hi_lo >> 64) + (middle >> 64);
    (high, low)
}

/// `(high * 2^128 + low) / d` and its remainder, for `high < d` (so the quotient fits).
fn div_wide(high: u128, low: u128, d: u128) -> (u128, u128) {
    debug_assert!(high < d);
    let (mut remainder, mut quotient) = (high, 0u128);
    for bit in (0..128).rev() {
        let carry = remainder >> 127;
        remainder = (remainder << 1) | ((low >> bit) & 1);
        quotient <<= 1;
        if carry == 1 || remainder >= d {
            remainder = remainder.wrapping_sub(d);
            quotient |= 1;
        }
    }
    (quotient, remainder)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const HOUR: i64 = 3_600_000;
    const DAY: i64 = 24 * HOUR;

    #[test]
    fn three_equal_parts_give_the_leftover_to_the_first() {
        // 100 / 3 = 33 rem 1 each; all remainders tie, so index 0 gets the extra unit.
        assert_eq!(split_proportionally(100, &[1, 1, 1]), vec![34, 33, 33]);
        // 100 / 3 for weights 7: the same, only scaled.
        assert_eq!(split_proportionally(100, &[7, 7, 7]), vec![34, 33, 33]);
    }

    #[test]
    fn leftovers_go_to_the_largest_remainders() {
        // Exact shares of 10 by 1:2:4 (total 7): 1.43, 2.86, 5.71 -> floors 1, 2, 5 (sum 8);
        // the two leftover units go to the remainders .86 and .71.
        assert_eq!(split_proportionally(10, &[1, 2, 4]), vec![1, 3, 6]);
        // Ties between non-first parts also go to the lower index: 2 / 3 -> .67 each.
        assert_eq!(split_proportionally(2, &[1, 1, 1]), vec![1, 1, 0]);
    }

    #[test]
    fn credits_mirror_charges() {
        assert_eq!(split_proportionally(-100, &[1, 1, 1]), vec![-34, -33, -33]);
        assert_eq!(split_proportionally(-10, &[1, 2, 4]), vec![-1, -3, -6]);
        // The most negative amount has no positive counterpart in i64 but still splits exactly.
        let parts = split_proportionally(i64::MIN, &[1, 1]);
        assert_eq!(parts, vec![i64::MIN / 2, i64::MIN / 2]);
    }

    #[test]
    fn zero_weights_get_nothing() {
        assert_eq!(split_proportionally(100, &[0, 3, 0, 1]), vec![0, 75, 0, 25]);
        assert_eq!(split_proportionally(100, &[0, 0, 0]), vec![0, 0, 0]);
        assert_eq!(split_proportionally(100, &[]), Vec::<Micros>::new());
        assert_eq!(split_proportionally(0, &[1, 2]), vec![0, 0]);
    }

    #[test]
    fn huge_weights_do_not_overflow() {
        let big = 1u128 << 100;
        // i64::MAX = 2^63 - 1, odd: the two halves differ by the leftover unit.
        let parts = split_proportionally(i64::MAX, &[big, big]);
        assert_eq!(parts, vec![i64::MAX / 2 + 1, i64::MAX / 2]);
        // 3:1 of i64::MAX: 3/4 of 2^63 - 1 = 6917529027641081855.25 -> floor, then +0 (rem .25
        // loses to the .75 of the other part).
        let parts = split_proportionally(i64::MAX, &[3 * big, big]);
        assert_eq!(
            parts,
            vec![6_917_529_027_641_081_855, 2_305_843_009_213_693_952]
        );
    }

    #[test]
    fn wide_arithmetic_matches_narrow_arithmetic() {
        let (a, b, d) = (u128::MAX / 3, (1u128 << 100) + 12_345, (1u128 << 101) + 7);
        let (q, r) = mul_div_rem(a, b, d);
        // Check q * d + r == a * b in 256 bits.
        let (qd_hi, qd_lo) = widening_mul(q, d);
        let (sum_lo, carry) = qd_lo.overflowing_add(r);
        assert_eq!((qd_hi + u128::from(carry), sum_lo), widening_mul(a, b));
        assert!(r < d);
        assert_eq!(mul_div_rem(10, 3, 4), (7, 2));
    }

    #[test]
    fn a_day_splits_into_hours_with_the_extra_micro_in_the_first() {
        // 24_000_001 over 24 equal hours: 1_000_000 each with equal remainders; the one
        // leftover micro goes to the lowest index, the first hour.
        let start = 20_000 * DAY;
        let parts = apportion_over_windows(start, start + DAY, 24_000_001, HOUR);
        assert_eq!(parts.len(), 24);
        assert_eq!(parts.iter().map(|&(_, m)| m).sum::<Micros>(), 24_000_001);
        assert_eq!(parts[0], (start, 1_000_001));
        for (i, &(window, micros)) in parts.iter().enumerate().skip(1) {
            assert_eq!((window, micros), (start + i as i64 * HOUR, 1_000_000));
        }
    }

    #[test]
    fn partial_windows_weigh_by_overlap() {
        // 00:30 to 02:15: 30 + 60 + 15 minutes, 700 micros -> 200, 400, 100.
        let parts = apportion_over_windows(HOUR / 2, 2 * HOUR + HOUR / 4, 700, HOUR);
        assert_eq!(parts, vec![(0, 200), (HOUR, 400), (2 * HOUR, 100)]);
        // Inside one window: all of it there.
        assert_eq!(
            apportion_over_windows(HOUR + 5, HOUR + 10, -7, HOUR),
            vec![(HOUR, -7)]
        );
        // 00:45 to 01:15, 3 micros: 15 min each, 1.5 / 1.5 -> the tie goes to the first.
        assert_eq!(
            apportion_over_windows(45 * 60_000, 75 * 60_000, 3, HOUR),
            vec![(0, 2), (HOUR, 1)]
        );
    }

    #[test]
    fn instant_charges_land_in_the_window_of_their_start() {
        assert_eq!(
            apportion_over_windows(HOUR + 1, HOUR + 1, 5, HOUR),
            vec![(HOUR, 5)]
        );
        assert_eq!(
            apportion_over_windows(HOUR + 1, 0, 5, HOUR),
            vec![(HOUR, 5)]
        );
        // Before the epoch, windows are still floor-aligned.
        assert_eq!(apportion_over_windows(-1, -1, 5, HOUR), vec![(-HOUR, 5)]);
    }

    /// `a * b` as four u64 limbs, most significant first: an independent check of the exact
    /// share bounds.
    fn limbs(a: u128, b: u128) -> [u64; 4] {
        let (a, b) = ([a as u64, (a >> 64) as u64], [b as u64, (b >> 64) as u64]);
        let mut acc = [0u128; 5];
        for (i, &x) in a.iter().enumerate() {
            for (j, &y) in b.iter().enumerate() {
                let p = u128::from(x) * u128::from(y);
                acc[i + j] += p & u128::from(u64::MAX);
                acc[i + j + 1] += p >> 64;
            }
        }
        let mut out = [0u64; 4];
        let mut carry = 0u128;
        for (k, &limb) in acc.iter().take(4).enumerate() {
            let v = limb + carry;
            out[3 - k] = v as u64;
            carry = v >> 64;
        }
        out
    }

    fn weights() -> impl Strategy<Value = Vec<u128>> {
        let weight = prop_oneof![
            Just(0u128),
            0u128..10,
            0u128..=u128::from(u64::MAX),
            0u128..=(1u128 << 100),
        ];
        prop::collection::vec(weight, 0..12)
    }

    proptest! {
        #[test]
        fn split_conserves_and_stays_within_one_micro(
            amount in any::<i64>(),
            weights in weights(),
        ) {
            let parts = split_proportionally(amount, &weights);
            prop_assert_eq!(parts.len(), weights.len());
            let total: u128 = weights.iter().sum();
            if total == 0 {
                prop_assert!(parts.iter().all(|&p| p == 0));
                return Ok(());
            }
            prop_assert_eq!(parts.iter().map(|&p| i128::from(p)).sum::<i128>(), i128::from(amount));
            let magnitude = u128::from(amount.unsigned_abs());
            for (&part, &w) in parts.iter().zip(&weights) {
                prop_assert!(part == 0 || (part < 0) == (amount < 0));
                // (|part| - 1) * total < |amount| * w < (|part| + 1) * total
                let exact = limbs(magnitude, w);
                let p = u128::from(part.unsigned_abs());
                prop_assert!(p == 0 || limbs(p - 1, total) < exact);
                prop_assert!(exact < limbs(p + 1, total));
                if w == 0 {
                    prop_assert_eq!(part, 0);
                }
            }
        }

        #[test]
        fn apportioning_conserves(
            start in -10 * DAY..10 * DAY,
            length in -DAY..3 * DAY,
            amount in any::<i64>(),
            window in prop_oneof![Just(HOUR), Just(DAY), 60_000i64..5 * HOUR],
        ) {
            let parts = apportion_over_windows(start, start + length, amount, window);
            let sum: i128 = parts.iter().map(|&(_, m)| i128::from(m)).sum();
            prop_assert_eq!(sum, i128::from(amount));
            prop_assert_eq!(parts[0].0, start.div_euclid(window) * window);
            for pair in parts.windows(2) {
                prop_assert_eq!(pair[1].0 - pair[0].0, window);
            }
            prop_assert!(parts.last().unwrap().0 < (start + length).max(start + 1));
        }
    }
}
