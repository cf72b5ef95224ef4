//! Distances on the Earth's surface, for "where was the job completed" checks.

/// Mean Earth radius in metres (IUGG).
const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance in metres between two (latitude, longitude) points in degrees
/// (haversine). `None` when a coordinate is out of range or not a number.
pub fn distance_m(a: (f64, f64), b: (f64, f64)) -> Option<f64> {
    let valid = |(lat, lng): (f64, f64)| {
        lat.is_finite() && lng.is_finite() && lat.abs() <= 90.0 && lng.abs() <= 180.0
    };
    if !valid(a) || !valid(b) {
        return None;
    }
    let (lat1, lat2) = (a.0.to_radians(), b.0.to_radians());
    let dlat = lat2 - lat1;
    let dlng = (b.1 - a.1).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlng / 2.0).sin().powi(2);
    Some(2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_distances() {
        assert_eq!(distance_m((51.5, -0.12), (51.5, -0.12)), Some(0.0));
        // One degree of latitude is about 111.2 km.
        let d = distance_m((0.0, 0.0), (1.0, 0.0)).unwrap();
        assert!((d - 111_195.0).abs() < 50.0, "{d}");
        // Paris to London, about 343.5 km.
        let d = distance_m((48.8566, 2.3522), (51.5074, -0.1278)).unwrap();
        assert!((d - 343_500.0).abs() < 1_500.0, "{d}");
        // Across the antimeridian is short, not half the planet.
        let d = distance_m((0.0, 179.9), (0.0, -179.9)).unwrap();
        assert!(d < 25_000.0, "{d}");
    }

    #[test]
    fn out_of_range_is_none() {
        assert_eq!(distance_m((91.0, 0.0), (0.0, 0.0)), None);
        assert_eq!(distance_m((0.0, f64::NAN), (0.0, 0.0)), None);
    }
}
