use proptest::prelude::*;

use super::*;

/// Rule 3 applied literally: sort each group's times, count gaps over 5 minutes.
fn reference_pulls(times: &[i64]) -> u64 {
    let mut sorted = times.to_vec();
    sorted.sort_unstable();
    let new_pulls = sorted.windows(2).filter(|w| w[1] - w[0] > PULL_GAP_MICROS).count();
    if sorted.is_empty() { 0 } else { new_pulls as u64 + 1 }
}

#[test]
fn a_gap_of_exactly_five_minutes_continues_the_pull_and_one_microsecond_more_starts_another() {
    let at = |t| blob("10.0.0.1", t, "p/app", 1, 200);
    assert_eq!(pulls(&[at(DAY0), at(DAY0 + 5 * MIN)]), 1);
    assert_eq!(pulls(&[at(DAY0), at(DAY0 + 5 * MIN + 1)]), 2);
    assert_eq!(pulls(&[at(DAY0), at(DAY0)]), 1, "equal times (distinct request ids) are one pull");
    // The gap is measured from the previous download, not from the pull's first one.
    assert_eq!(pulls(&[at(DAY0), at(DAY0 + 4 * MIN), at(DAY0 + 8 * MIN), at(DAY0 + 12 * MIN)]), 1);
    assert_eq!(pulls(&[at(DAY0), at(DAY0 + 4 * MIN), at(DAY0 + 10 * MIN), at(DAY0 + 12 * MIN)]), 2);
}

#[test]
fn out_of_order_rows_give_the_sorted_answer() {
    let at = |t| blob("10.0.0.1", t, "p/app", 1, 200);
    // Two pulls 8 minutes apart, then a download in between bridges them into one.
    assert_eq!(pulls(&[at(DAY0), at(DAY0 + 8 * MIN)]), 2);
    assert_eq!(pulls(&[at(DAY0), at(DAY0 + 8 * MIN), at(DAY0 + 4 * MIN)]), 1);
    // A download before the first one extends the pull backwards; the first is then later.
    let stats = stats_of(&[at(DAY0 + 20 * MIN), at(DAY0 + 10 * MIN), at(DAY0 + 15 * MIN), at(DAY0)]);
    assert_eq!(stats.report(None).summary.pulls, 2);
    let kept: Vec<(i64, i64, u64)> = stats.groups.values().flatten().map(|p| (p.first, p.last, p.downloads)).collect();
    assert_eq!(kept, [(DAY0, DAY0, 1), (DAY0 + 10 * MIN, DAY0 + 20 * MIN, 3)]);
    // Rows of an earlier hour arriving last (as in a later log object).
    assert_eq!(pulls(&[at(DAY0 + 60 * MIN), at(DAY0 + 61 * MIN), at(DAY0 - 60 * MIN)]), 2);
}

#[test]
fn a_pull_across_midnight_counts_on_its_first_day() {
    let rows = [blob("10.0.0.1", DAY0 - MIN, "p/app", 1, 200), blob("10.0.0.1", DAY0 + MIN, "p/app", 2, 200)];
    let report = stats_of(&rows).report(None);
    let daily: Vec<(&str, u64, u64, u64)> =
        report.daily.iter().map(|d| (d.day.as_str(), d.pulls, d.blob_downloads, d.bytes_served)).collect();
    assert_eq!(daily, [("2024-03-10", 1, 1, 1001), ("2024-03-11", 0, 1, 1002)]);
}

proptest! {
    /// Whatever order the downloads of one group arrive in, the pulls are the sorted rule's.
    #[test]
    fn grouping_is_order_independent(times in prop::collection::vec(0i64..120, 0..40), seed in any::<u64>()) {
        // Minutes within two hours: dense enough for gaps on both sides of 5 minutes.
        let times: Vec<i64> = times.iter().map(|m| DAY0 + m * MIN + m % 7).collect();
        let mut shuffled = times.clone();
        let mut state = seed | 1;
        for i in (1..shuffled.len()).rev() {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            shuffled.swap(i, (state % (i as u64 + 1)) as usize);
        }
        let rows: Vec<UsageRow> =
            shuffled.iter().enumerate().map(|(n, &t)| blob("10.0.0.1", t, "p/app", n as u64, 200)).collect();
        let stats = stats_of(&rows);
        prop_assert_eq!(stats.report(None).summary.pulls, reference_pulls(&times));
        for group in stats.groups.values() {
            prop_assert!(group.windows(2).all(|w| w[1].first - w[0].last > PULL_GAP_MICROS));
            prop_assert_eq!(group.iter().map(|p| p.downloads).sum::<u64>(), times.len() as u64);
        }
    }
}
