//! Unit and property tests of the parts rules.

use super::*;
use proptest::prelude::*;

fn item(id: i64, kind: &str, serial: Option<&str>, quantity: f64) -> Item {
    Item {
        inventory_id: id,
        inventory_type: kind.into(),
        serial_number: serial.map(str::to_string),
        quantity,
    }
}

fn view() -> PartsView {
    PartsView {
        van: vec![
            item(1, "ONT", Some("ONT-1"), 1.0),
            item(2, "ONT", Some("ONT-2"), 1.0),
            item(3, "CAT6_M", None, 150.0),
        ],
        site: Some(vec![item(10, "METER", Some("OLD-1"), 1.0)]),
        recorded: vec![],
    }
}

fn ok(v: &PartsView, r: PartRequest) -> PlannedPart {
    plan(v, true, &r).unwrap()
}

fn req(action: PartAction, kind: &str, serial: Option<&str>, quantity: Option<f64>) -> PartRequest {
    PartRequest {
        action,
        inventory_type: Some(kind.into()),
        serial_number: serial.map(str::to_string),
        quantity,
        exchanged_inventory_id: None,
        undoes: None,
    }
}

#[test]
fn a_serialized_install_takes_the_serial_out_of_the_van() {
    let mut v = view();
    let p = ok(&v, req(PartAction::Install, "ONT", Some("ONT-1"), None));
    assert_eq!(p.inventory_id, Some(1));
    assert_eq!(p.ofsc, OfscPartAction::InstallFromVan);
    apply(&mut v, "op_1", &p);
    assert!(v
        .van
        .iter()
        .all(|i| i.serial_number.as_deref() != Some("ONT-1")));
    let again = plan(
        &v,
        true,
        &req(PartAction::Install, "ONT", Some("ONT-1"), None),
    );
    assert_eq!(again.unwrap_err().code, "already-installed");
}

#[test]
fn a_serial_not_in_the_van_is_refused() {
    let r = plan(
        &view(),
        true,
        &req(PartAction::Install, "ONT", Some("ONT-9"), None),
    );
    assert_eq!(r.unwrap_err().code, "serial-not-in-van");
    let r = plan(&view(), true, &req(PartAction::Install, "ONT", None, None));
    assert_eq!(r.unwrap_err().code, "serial-required");
}

#[test]
fn parts_need_a_started_activity() {
    let r = plan(
        &view(),
        false,
        &req(PartAction::Consume, "CAT6_M", None, Some(1.0)),
    );
    let e = r.unwrap_err();
    assert_eq!((e.code, e.status), ("activity-not-started", 409));
}

#[test]
fn bulk_consumption_is_net_of_earlier_entries_and_overdraw_names_what_is_left() {
    let mut v = view();
    let p = ok(&v, req(PartAction::Consume, "CAT6_M", None, Some(100.0)));
    assert_eq!((p.inventory_id, p.quantity), (Some(3), 100.0));
    apply(&mut v, "op_1", &p);
    let e = plan(
        &v,
        true,
        &req(PartAction::Consume, "CAT6_M", None, Some(60.0)),
    )
    .unwrap_err();
    assert_eq!(e.code, "insufficient-stock");
    assert_eq!(e.available, Some(50.0));
    let ok = ok(&v, req(PartAction::Consume, "CAT6_M", None, Some(50.0)));
    apply(&mut v, "op_2", &ok);
    assert_eq!(bulk_total(&v.van, "CAT6_M"), 0.0);
}

#[test]
fn bad_quantities_are_400s() {
    for q in [Some(0.0), Some(-1.0), Some(f64::NAN)] {
        let e = plan(&view(), true, &req(PartAction::Consume, "CAT6_M", None, q)).unwrap_err();
        assert_eq!(e.status, 400, "{q:?}");
    }
    // Whether a quantity is needed depends on the van (bulk or serialized): a conflict.
    let e = plan(
        &view(),
        true,
        &req(PartAction::Consume, "CAT6_M", None, None),
    )
    .unwrap_err();
    assert_eq!((e.status, e.code), (409, "quantity-required"));
    let e = plan(
        &view(),
        true,
        &req(PartAction::Consume, "ONT", Some("ONT-1"), None),
    );
    assert_eq!(e.unwrap_err().status, 400);
}

#[test]
fn deinstall_needs_the_equipment_at_the_site_when_it_is_known() {
    let mut v = view();
    let p = ok(&v, req(PartAction::Deinstall, "METER", Some("OLD-1"), None));
    assert_eq!(
        (p.ofsc, p.inventory_id),
        (OfscPartAction::Deinstall, Some(10))
    );
    apply(&mut v, "op_1", &p);
    let again = plan(
        &v,
        true,
        &req(PartAction::Deinstall, "METER", Some("OLD-1"), None),
    );
    assert_eq!(again.unwrap_err().code, "equipment-not-at-site");
    v.site = None;
    let blind = ok(&v, req(PartAction::Deinstall, "METER", Some("X"), None));
    assert_eq!(blind.inventory_id, None);
}

#[test]
fn an_exchange_links_the_install_to_the_deinstalled_item() {
    let mut v = view();
    let out = ok(&v, req(PartAction::Deinstall, "METER", Some("OLD-1"), None));
    apply(&mut v, "op_1", &out);
    let mut r = req(PartAction::Install, "ONT", Some("ONT-2"), None);
    r.exchanged_inventory_id = Some(10);
    let inn = plan(&v, true, &r).unwrap();
    assert_eq!(inn.exchanged_inventory_id, Some(10));
}

#[test]
fn an_exchange_may_name_only_equipment_of_this_site() {
    let v = view();
    let mut r = req(PartAction::Install, "ONT", Some("ONT-2"), None);
    // Still at the site: fine, before its deinstall as after it (above).
    r.exchanged_inventory_id = Some(10);
    assert!(plan(&v, true, &r).is_ok());
    // Another customer's equipment, or the van's own item.
    for other in [999, 1] {
        r.exchanged_inventory_id = Some(other);
        assert_eq!(
            plan(&v, true, &r).unwrap_err().code,
            "equipment-not-at-site"
        );
    }
    // The site's equipment unknown (OFSC unreachable) and nothing deinstalled here: refused.
    let unknown = PartsView {
        site: None,
        ..view()
    };
    r.exchanged_inventory_id = Some(10);
    assert_eq!(
        plan(&unknown, true, &r).unwrap_err().code,
        "equipment-not-at-site"
    );
}

#[test]
fn an_undo_takes_back_one_entry_once() {
    let mut v = view();
    let p = ok(&v, req(PartAction::Install, "ONT", Some("ONT-1"), None));
    apply(&mut v, "op_1", &p);
    let undo = PartRequest {
        undoes: Some("op_1".into()),
        ..req(PartAction::Undo, "", None, None)
    };
    let u = plan(&v, true, &undo).unwrap();
    assert_eq!(u.ofsc, OfscPartAction::UndoInstall);
    assert_eq!(u.serial_number.as_deref(), Some("ONT-1"));
    apply(&mut v, "op_2", &u);
    assert_eq!(plan(&v, true, &undo).unwrap_err().code, "invalid-undo");
    let of_undo = PartRequest {
        undoes: Some("op_2".into()),
        ..undo.clone()
    };
    assert_eq!(plan(&v, true, &of_undo).unwrap_err().code, "invalid-undo");
    let unknown = PartRequest {
        undoes: Some("op_9".into()),
        ..undo
    };
    assert_eq!(plan(&v, true, &unknown).unwrap_err().code, "invalid-undo");
}

#[test]
fn an_entry_that_never_reached_ofsc_cannot_be_undone() {
    let mut v = view();
    let p = ok(&v, req(PartAction::Install, "ONT", Some("ONT-1"), None));
    v.recorded.push(Recorded {
        part_id: "op_1".into(),
        plan: p,
        live: false,
    });
    let undo = PartRequest {
        undoes: Some("op_1".into()),
        ..req(PartAction::Undo, "", None, None)
    };
    assert_eq!(plan(&v, true, &undo).unwrap_err().code, "invalid-undo");
}

proptest! {
    /// Whatever a device asks, the van never goes negative and every unit is either still in
    /// the van or installed by exactly one live entry.
    #[test]
    fn van_stock_is_conserved(asks in proptest::collection::vec((0u8..4, 1u32..80), 1..40)) {
        let mut v = view();
        for (n, (what, qty)) in asks.into_iter().enumerate() {
            let r = match what {
                0 => req(PartAction::Consume, "CAT6_M", None, Some(f64::from(qty))),
                1 => req(PartAction::Install, "ONT", Some(if qty % 2 == 0 { "ONT-1" } else { "ONT-2" }), None),
                2 => req(PartAction::Install, "CAT6_M", None, Some(f64::from(qty) / 2.0)),
                _ => PartRequest { undoes: Some(format!("op_{}", qty % 8)), ..req(PartAction::Undo, "", None, None) },
            };
            if let Ok(p) = plan(&v, true, &r) {
                apply(&mut v, &format!("op_{n}"), &p);
            }
            let in_van = bulk_total(&v.van, "CAT6_M");
            let used: f64 = v.recorded.iter()
                .filter(|r| r.plan.ofsc == OfscPartAction::InstallFromVan && r.plan.serial_number.is_none())
                .map(|r| r.plan.quantity).sum();
            prop_assert!(in_van >= 0.0);
            prop_assert!((in_van + used - 150.0).abs() < 1e-6);
            for serial in ["ONT-1", "ONT-2"] {
                let in_van = v.van.iter().filter(|i| i.serial_number.as_deref() == Some(serial)).count();
                let installed = v.recorded.iter().filter(|r| r.plan.ofsc == OfscPartAction::InstallFromVan
                    && r.plan.serial_number.as_deref() == Some(serial)).count();
                prop_assert_eq!(in_van + installed, 1);
            }
        }
    }
}
