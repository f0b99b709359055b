//! The PNG: a valid image of the stated size, not blank, with text drawn, from the fixtures
//! and from hostile and oversized input.

use chatops_report::{PNG_HEIGHT, PNG_WIDTH, render_png};
use resvg::tiny_skia::Pixmap;

use crate::support;

fn decode(png: &[u8]) -> Pixmap {
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n", "PNG signature");
    Pixmap::decode_png(png).expect("a decodable PNG")
}

/// Pixels lighter than the header's dark band inside the title's box: glyphs.
fn light_pixels_in_title(p: &Pixmap) -> usize {
    let mut n = 0;
    for y in 14..48 {
        for x in 24..600 {
            let c = p.pixel(x, y).unwrap();
            if c.red() > 160 && c.green() > 160 && c.blue() > 160 {
                n += 1;
            }
        }
    }
    n
}

/// Dark pixels in the first card's label and value (text on a white card).
fn dark_pixels_in_first_card(p: &Pixmap) -> usize {
    let mut n = 0;
    for y in 110..175 {
        for x in 30..150 {
            let c = p.pixel(x, y).unwrap();
            if c.red() < 120 && c.green() < 120 && c.blue() < 120 {
                n += 1;
            }
        }
    }
    n
}

#[test]
fn png_is_a_valid_image_of_the_stated_size_with_charts_and_text() {
    let png = render_png(&support::results(), Some(&support::metrics()), Some(&support::comparison())).unwrap();
    let out = support::artefact_dir("png").join("report.png");
    std::fs::write(&out, &png).unwrap();
    println!("png: {}", out.display());

    let p = decode(&png);
    assert_eq!((p.width(), p.height()), (PNG_WIDTH, PNG_HEIGHT));
    let mut colours = std::collections::HashSet::new();
    let mut not_background = 0usize;
    for px in p.pixels() {
        colours.insert((px.red(), px.green(), px.blue()));
        if (px.red(), px.green(), px.blue()) != (0xf0, 0xf4, 0xf8)
            && (px.red(), px.green(), px.blue()) != (255, 255, 255)
        {
            not_background += 1;
        }
    }
    assert!(colours.len() > 200, "only {} colours: blank?", colours.len());
    assert!(not_background > p.pixels().len() / 10, "{not_background} drawn pixels");
    assert!(light_pixels_in_title(&p) > 500, "title text: {}", light_pixels_in_title(&p));
    assert!(dark_pixels_in_first_card(&p) > 100, "card text: {}", dark_pixels_in_first_card(&p));
    // A chart panel has colour: the E2E breakdown's stage colours (handler teal).
    let teal = p.pixels().iter().filter(|c| (c.red(), c.green(), c.blue()) == (0x76, 0xb7, 0xb2)).count();
    assert!(teal > 1000, "{teal} pixels of the handler segment");
}

#[test]
fn png_without_metrics_has_the_same_size_and_still_draws_text() {
    let p = decode(&render_png(&support::results(), None, None).unwrap());
    assert_eq!((p.width(), p.height()), (PNG_WIDTH, PNG_HEIGHT));
    assert!(light_pixels_in_title(&p) > 500);
}

#[test]
fn png_renders_hostile_and_oversized_input() {
    let (r, m, c) = support::hostile();
    let p = decode(&render_png(&r, Some(&m), Some(&c)).unwrap());
    assert_eq!((p.width(), p.height()), (PNG_WIDTH, PNG_HEIGHT));
    assert!(light_pixels_in_title(&p) > 500);

    let p = decode(&render_png(&support::oversized(), Some(&support::metrics()), None).unwrap());
    assert_eq!((p.width(), p.height()), (PNG_WIDTH, PNG_HEIGHT));
}
