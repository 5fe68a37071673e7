//! Quiet hours (`--quiet-hours 22:00-07:00`): a window of the local day,
//! and the local time of day read with `localtime_r` (docs/PROTOCOL.md §8).

/// Seconds in a day.
const DAY: u32 = 24 * 3600;

/// From `start` (inclusive) to `end` (exclusive), seconds into the local
/// day; past midnight when `end` is before `start`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Quiet {
    start: u32,
    end: u32,
}

impl Quiet {
    /// `HH:MM-HH:MM`, or with seconds (`HH:MM:SS`).
    pub fn parse(text: &str) -> Result<Quiet, String> {
        let (start, end) = text
            .trim()
            .split_once('-')
            .ok_or("want HH:MM-HH:MM, such as 22:00-07:00")?;
        let quiet = Quiet {
            start: time_of_day(start)?,
            end: time_of_day(end)?,
        };
        match quiet.start == quiet.end {
            true => Err("it starts where it ends".into()),
            false => Ok(quiet),
        }
    }

    /// Seconds left of the window at `now` (seconds into the day), or
    /// `None` outside it.
    pub fn left(&self, now: u32) -> Option<u32> {
        let since_start = (now + DAY - self.start) % DAY;
        let length = (self.end + DAY - self.start) % DAY;
        (since_start < length).then(|| length - since_start)
    }
}

fn time_of_day(text: &str) -> Result<u32, String> {
    let parts: Vec<&str> = text.trim().split(':').collect();
    let number = |part: &str, max: u32| match part.parse::<u32>() {
        Ok(n) if n < max && part.len() == 2 => Ok(n),
        _ => Err(format!("{text:?} is not a time HH:MM")),
    };
    let (hours, minutes, seconds) = match parts.as_slice() {
        [h, m] => (number(h, 24)?, number(m, 60)?, 0),
        [h, m, s] => (number(h, 24)?, number(m, 60)?, number(s, 60)?),
        _ => return Err(format!("{text:?} is not a time HH:MM")),
    };
    Ok(hours * 3600 + minutes * 60 + seconds)
}

/// Seconds into the local day now (`localtime_r`, so `TZ` and the
/// system's zone apply).
pub fn local_time_of_day() -> u32 {
    // SAFETY: `time` with a null pointer only returns; `localtime_r` writes
    // into the `tm` we own and reads the zone, and is thread-safe.
    unsafe {
        let now = libc::time(std::ptr::null_mut());
        let mut tm: libc::tm = std::mem::zeroed();
        if libc::localtime_r(&now, &mut tm).is_null() {
            return (now.rem_euclid(DAY.into())) as u32;
        }
        (tm.tm_hour * 3600 + tm.tm_min * 60 + tm.tm_sec.min(59)) as u32
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_past_midnight_and_one_within_a_day() {
        let night = Quiet::parse("22:00-07:00").unwrap();
        assert_eq!(night.left(23 * 3600), Some(8 * 3600));
        assert_eq!(night.left(6 * 3600 + 3599), Some(1));
        assert_eq!(night.left(7 * 3600), None);
        assert_eq!(night.left(12 * 3600), None);
        let lunch = Quiet::parse("12:00:30-13:00").unwrap();
        assert_eq!(lunch.left(12 * 3600 + 30), Some(3570));
        assert_eq!(lunch.left(12 * 3600), None);
        for bad in [
            "",
            "22:00",
            "24:00-01:00",
            "1:00-2:00",
            "10:00-10:00",
            "a-b",
        ] {
            assert!(Quiet::parse(bad).is_err(), "{bad}");
        }
    }
}
