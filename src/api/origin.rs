//! Where clients reach this service, for the links it hands out (upload URLs, the console's
//! SSO callback) and for `Secure` cookies: the configured public URL, else the request's own
//! `Host`; forwarded headers are believed only from configured proxies.

use actix_web::HttpRequest;
use std::net::IpAddr;

/// `server.public_url` and `server.trusted_proxies`, parsed once.
#[derive(Debug, Clone, Default)]
pub struct OriginConfig {
    pub public_url: Option<String>,
    pub trusted_proxies: Vec<IpAddr>,
}

/// The scheme and authority (plus any path prefix) links are built on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub base: String,
    pub tls: bool,
}

/// A `Host` value we are willing to put into a link: a host name or address and a port.
fn plausible_host(h: &str) -> bool {
    !h.is_empty()
        && h.len() <= 255
        && h.chars()
            .all(|c| c.is_ascii_alphanumeric() || ".-:[]".contains(c))
}

/// The decision, without the request: pure, for the unit tests.
pub fn decide(
    config: &OriginConfig,
    from_trusted_proxy: bool,
    forwarded: (&str, &str),
    direct: (&str, &str),
) -> Origin {
    if let Some(url) = &config.public_url {
        return Origin {
            base: url.trim_end_matches('/').to_string(),
            tls: url.starts_with("https://"),
        };
    }
    let (scheme, host) = if from_trusted_proxy {
        forwarded
    } else {
        direct
    };
    let host = if plausible_host(host) { host } else { direct.1 };
    Origin {
        base: format!("{scheme}://{host}"),
        tls: scheme == "https",
    }
}

/// The origin of this request as `config` allows it to be known.
pub fn of(req: &HttpRequest, config: &OriginConfig) -> Origin {
    let trusted = req
        .peer_addr()
        .is_some_and(|p| config.trusted_proxies.contains(&p.ip()));
    // actix's connection info reads Forwarded and X-Forwarded-*: only from a trusted proxy.
    let info = req.connection_info();
    let direct_scheme = if req.app_config().secure() {
        "https"
    } else {
        "http"
    };
    let host_header = req
        .headers()
        .get(actix_web::http::header::HOST)
        .and_then(|v| v.to_str().ok())
        .filter(|h| plausible_host(h))
        .unwrap_or_else(|| req.app_config().host());
    decide(
        config,
        trusted,
        (info.scheme(), info.host()),
        (direct_scheme, host_header),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(public: Option<&str>) -> OriginConfig {
        OriginConfig {
            public_url: public.map(str::to_string),
            trusted_proxies: vec![],
        }
    }

    #[test]
    fn forwarded_headers_count_only_from_a_trusted_proxy() {
        let fwd = ("https", "evil.example");
        let direct = ("http", "10.0.0.5:8080");
        assert_eq!(
            decide(&cfg(None), false, fwd, direct),
            Origin {
                base: "http://10.0.0.5:8080".into(),
                tls: false
            }
        );
        assert_eq!(
            decide(&cfg(None), true, fwd, direct),
            Origin {
                base: "https://evil.example".into(),
                tls: true
            }
        );
    }

    #[test]
    fn a_configured_public_url_wins_and_junk_hosts_are_not_used() {
        let o = decide(
            &cfg(Some("https://fs.example.com/")),
            true,
            ("http", "proxy"),
            ("http", "x"),
        );
        assert_eq!(o.base, "https://fs.example.com");
        assert!(o.tls);
        let o = decide(
            &cfg(None),
            true,
            ("http", "a/b?c"),
            ("http", "127.0.0.1:80"),
        );
        assert_eq!(o.base, "http://127.0.0.1:80");
    }
}
