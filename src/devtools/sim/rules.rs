//! The simulator's legal-transition table and route rules (ofsc-api.md §3.1), as pure functions.

/// A state-changing call on one activity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Action {
    Start,
    Enroute,
    StopTravel,
    Suspend,
    Complete,
    NotDone,
    Cancel,
    Delay,
    Reopen,
    Delete,
}

impl Action {
    pub const ALL: [Action; 10] = [
        Action::Start,
        Action::Enroute,
        Action::StopTravel,
        Action::Suspend,
        Action::Complete,
        Action::NotDone,
        Action::Cancel,
        Action::Delay,
        Action::Reopen,
        Action::Delete,
    ];

    /// The custom-action name in the URL (`DELETE` is the HTTP method).
    pub fn name(self) -> &'static str {
        match self {
            Action::Start => "start",
            Action::Enroute => "enroute",
            Action::StopTravel => "stopTravel",
            Action::Suspend => "suspend",
            Action::Complete => "complete",
            Action::NotDone => "notDone",
            Action::Cancel => "cancel",
            Action::Delay => "delay",
            Action::Reopen => "reopen",
            Action::Delete => "delete",
        }
    }

    pub fn parse(name: &str) -> Option<Action> {
        Action::ALL
            .into_iter()
            .find(|a| a.name() == name && *a != Action::Delete)
    }

    /// Whether the action carries a `time` that must not go backwards within the route.
    /// Whether the action takes a `time` (and so is held to the route's clock). OFSC's
    /// `stopTravel` documents no body: it records nothing that could go backwards.
    pub fn is_timed(self) -> bool {
        !matches!(
            self,
            Action::Delete | Action::Delay | Action::Reopen | Action::StopTravel
        )
    }
}

/// Facts about the activity's route that the rules depend on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RouteFacts {
    pub route_activated: bool,
    /// Another activity in the same route is `started`.
    pub other_started: bool,
    /// Another activity in the same route is `enroute`.
    pub other_enroute: bool,
    /// An earlier ordered activity of the route is still `pending`.
    pub earlier_pending: bool,
    pub date_past: bool,
    /// The activity has a position in the route.
    pub ordered: bool,
}

/// Checks an action against the table. `Err` carries the detail OFSC-style.
pub fn check(action: Action, status: &str, f: &RouteFacts) -> Result<(), String> {
    let refuse = |why: &str| {
        Err(format!(
            "Cannot {} an activity with status '{status}': {why}",
            action.name()
        ))
    };
    let allowed_from: &[&str] = match action {
        Action::Start => &["pending", "enroute"],
        Action::Enroute => &["pending"],
        Action::StopTravel => &["enroute"],
        Action::Suspend => &["started", "pending"],
        Action::Complete | Action::NotDone => &["started"],
        Action::Cancel => &["pending", "enroute"],
        Action::Delay => &["started"],
        Action::Reopen => &["completed", "notdone", "cancelled"],
        Action::Delete => &["pending"],
    };
    if !allowed_from.contains(&status) {
        return refuse("transition not allowed");
    }
    let needs_future_date = matches!(
        action,
        Action::Start
            | Action::Enroute
            | Action::Suspend
            | Action::Complete
            | Action::NotDone
            | Action::Cancel
            | Action::Delete
    );
    if needs_future_date && f.date_past {
        return refuse("the activity date is in the past");
    }
    match action {
        Action::Start => {
            if !f.route_activated {
                return refuse("the route is not activated");
            }
            if f.other_started {
                return refuse("another activity in the route is started");
            }
        }
        Action::Enroute => {
            if !f.route_activated {
                return refuse("the route is not activated");
            }
            if !f.ordered {
                return refuse("the activity is not ordered in the route");
            }
            if f.other_started || f.other_enroute || f.earlier_pending {
                return refuse("the activity is not the first in the route");
            }
        }
        Action::Suspend if !f.route_activated => {
            return refuse("the route is not activated");
        }
        Action::Delete if f.route_activated => {
            return refuse("the route is started");
        }
        _ => {}
    }
    Ok(())
}

/// The status an activity record has after a successful action (the suspended copy is a
/// separate record).
pub fn status_after(action: Action, status: &str) -> String {
    match action {
        Action::Start => "started",
        Action::Enroute => "enroute",
        Action::StopTravel => "pending",
        Action::Suspend => "pending",
        Action::Complete => "completed",
        Action::NotDone => "notdone",
        Action::Cancel => "cancelled",
        Action::Reopen => "pending",
        Action::Delay | Action::Delete => status,
    }
    .to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUSES: [&str; 7] = [
        "pending",
        "enroute",
        "started",
        "suspended",
        "completed",
        "notdone",
        "cancelled",
    ];

    fn open_route() -> RouteFacts {
        RouteFacts {
            route_activated: true,
            ordered: true,
            ..Default::default()
        }
    }

    /// The ✓ cells of ofsc-api.md §3.1, with every route precondition satisfied.
    fn legal(action: Action, status: &str) -> bool {
        use Action::*;
        matches!(
            (status, action),
            ("pending", Start | Enroute | Suspend | Cancel)
                | ("enroute", Start | StopTravel | Cancel)
                | ("started", Suspend | Complete | NotDone | Delay)
                | ("completed" | "notdone" | "cancelled", Reopen)
        )
    }

    #[test]
    fn every_cell_of_the_table() {
        for status in STATUSES {
            for action in Action::ALL {
                let facts = if action == Action::Delete {
                    RouteFacts {
                        ordered: true,
                        ..Default::default()
                    }
                } else {
                    open_route()
                };
                let want =
                    legal(action, status) || (action == Action::Delete && status == "pending");
                assert_eq!(
                    check(action, status, &facts).is_ok(),
                    want,
                    "{status} / {}",
                    action.name()
                );
            }
        }
    }

    #[test]
    fn start_needs_an_active_route_and_no_other_started() {
        let inactive = RouteFacts {
            ordered: true,
            ..Default::default()
        };
        assert!(check(Action::Start, "pending", &inactive).is_err());
        let busy = RouteFacts {
            other_started: true,
            ..open_route()
        };
        assert!(check(Action::Start, "pending", &busy).is_err());
    }

    #[test]
    fn enroute_must_be_first_in_route() {
        let f = RouteFacts {
            earlier_pending: true,
            ..open_route()
        };
        assert!(check(Action::Enroute, "pending", &f).is_err());
        let f = RouteFacts {
            ordered: false,
            ..open_route()
        };
        assert!(check(Action::Enroute, "pending", &f).is_err());
    }

    #[test]
    fn past_dates_refuse_lifecycle_actions_but_not_reopen() {
        let f = RouteFacts {
            date_past: true,
            ..open_route()
        };
        assert!(check(Action::Complete, "started", &f).is_err());
        assert!(check(Action::Reopen, "completed", &f).is_ok());
    }

    #[test]
    fn delete_refused_once_the_route_is_started() {
        assert!(check(Action::Delete, "pending", &open_route()).is_err());
    }
}
