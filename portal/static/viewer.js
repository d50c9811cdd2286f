/* DICOM viewer: series list, slice scrolling, window/level (presets, drag), zoom/pan.
   The server sends modality values (float32) or RGB bytes per frame; windowing happens here so
   dragging is smooth. MONOCHROME1 is inverted after windowing; RGB is shown as it is. */
(function () {
  "use strict";
  var root = document.getElementById("viewer");
  if (!root) { return; }
  var study = root.dataset.study;
  var canvas = document.getElementById("view");
  var ctx = canvas.getContext("2d");
  var off = document.createElement("canvas");
  var offCtx = off.getContext("2d");
  var slider = document.getElementById("slice");
  var sliceLabel = document.getElementById("slice-label");
  var wcInput = document.getElementById("wc");
  var wwInput = document.getElementById("ww");
  var status = document.getElementById("viewer-status");

  var st = { series: null, slices: [], index: 0, frame: null, wc: 0, ww: 1,
             zoom: 1, panX: 0, panY: 0, cache: new Map(), userWindow: false, token: 0 };

  function say(text) { status.textContent = text; }

  function api(path) { return "/api/viewer/studies/" + encodeURIComponent(study) + path; }

  function frameUrl(slice) {
    return api("/series/" + encodeURIComponent(st.series) + "/instances/" +
               encodeURIComponent(slice.sop) + "/frames/" + slice.frame);
  }

  function loadFrame(slice) {
    var url = frameUrl(slice);
    if (st.cache.has(url)) { return Promise.resolve(st.cache.get(url)); }
    return fetch(url, { credentials: "same-origin" }).then(function (r) {
      if (!r.ok) { throw new Error("frame: HTTP " + r.status); }
      var h = r.headers;
      return r.arrayBuffer().then(function (buf) {
        var colour = h.get("X-Samples") === "3";
        var f = { rows: +h.get("X-Rows"), cols: +h.get("X-Columns"), colour: colour,
                  inverted: h.get("X-Photometric") === "MONOCHROME1",
                  frames: +h.get("X-Frames") || 1,
                  wc: +h.get("X-Window-Center"), ww: +h.get("X-Window-Width"),
                  min: +h.get("X-Min"), max: +h.get("X-Max"),
                  values: colour ? new Uint8Array(buf) : new Float32Array(buf) };
        if (st.cache.size > 300) { st.cache.delete(st.cache.keys().next().value); }
        st.cache.set(url, f);
        return f;
      });
    });
  }

  function windowed(f) {
    var n = f.rows * f.cols, img = offCtx.createImageData(f.cols, f.rows), d = img.data;
    var i, j, v;
    if (f.colour) {
      for (i = 0, j = 0; i < n; i++, j += 4) {
        d[j] = f.values[3 * i]; d[j + 1] = f.values[3 * i + 1]; d[j + 2] = f.values[3 * i + 2];
        d[j + 3] = 255;
      }
      return img;
    }
    var c = st.wc, w = Math.max(1, st.ww);
    var low = c - 0.5 - (w - 1) / 2, high = c - 0.5 + (w - 1) / 2;
    for (i = 0, j = 0; i < n; i++, j += 4) {
      var x = f.values[i];
      if (x <= low) { v = 0; } else if (x > high) { v = 255; }
      else { v = w > 1 ? Math.round(((x - (c - 0.5)) / (w - 1) + 0.5) * 255) : 0; }
      if (f.inverted) { v = 255 - v; }
      d[j] = d[j + 1] = d[j + 2] = v; d[j + 3] = 255;
    }
    return img;
  }

  function draw() {
    var f = st.frame;
    ctx.setTransform(1, 0, 0, 1, 0, 0);
    ctx.fillStyle = "#000";
    ctx.fillRect(0, 0, canvas.width, canvas.height);
    if (!f) { return; }
    off.width = f.cols; off.height = f.rows;
    offCtx.putImageData(windowed(f), 0, 0);
    var fit = Math.min(canvas.width / f.cols, canvas.height / f.rows) * st.zoom;
    var x = (canvas.width - f.cols * fit) / 2 + st.panX;
    var y = (canvas.height - f.rows * fit) / 2 + st.panY;
    ctx.imageSmoothingEnabled = fit < 1;
    ctx.drawImage(off, x, y, f.cols * fit, f.rows * fit);
    wcInput.value = Math.round(st.wc);
    wwInput.value = Math.round(st.ww);
    canvas.dataset.wc = st.wc;
    canvas.dataset.ww = st.ww;
    canvas.dataset.slice = st.index + 1;
    wcInput.disabled = wwInput.disabled = f.colour;
  }

  function setWindow(c, w, byUser) {
    st.wc = c; st.ww = Math.max(1, w);
    if (byUser) { st.userWindow = true; }
    draw();
  }

  function show(index) {
    if (!st.slices.length) { return; }
    index = Math.max(0, Math.min(st.slices.length - 1, index));
    st.index = index;
    slider.value = index + 1;
    sliceLabel.textContent = (index + 1) + " / " + st.slices.length;
    var token = ++st.token;
    return loadFrame(st.slices[index]).then(function (f) {
      if (token !== st.token) { return; }
      if (!st.userWindow) { st.wc = f.wc; st.ww = f.ww; }
      st.frame = f;
      if (st.slices.length === 1 && f.frames > 1) { expandFrames(st.slices[0].sop, f.frames); }
      draw();
      say("Slice " + (st.index + 1) + " of " + st.slices.length);
      canvas.dataset.ready = "1";
    }).catch(function (e) { say("Could not load the image (" + e.message + ")."); });
  }

  function expandFrames(sop, frames) {
    st.slices = [];
    for (var k = 1; k <= frames; k++) { st.slices.push({ sop: sop, frame: k }); }
    slider.max = frames;
    slider.disabled = frames < 2;
    sliceLabel.textContent = (st.index + 1) + " / " + frames;
  }

  function loadSeries(uid, button) {
    document.querySelectorAll(".series-button").forEach(function (b) {
      b.setAttribute("aria-pressed", b === button ? "true" : "false");
    });
    st.series = uid; st.slices = []; st.frame = null; st.userWindow = false; st.index = 0;
    canvas.dataset.ready = "";
    say("Loading series…");
    fetch(api("/series/" + encodeURIComponent(uid)), { credentials: "same-origin" })
      .then(function (r) {
        if (!r.ok) { throw new Error("series: HTTP " + r.status); }
        return r.json();
      }).then(function (data) {
        st.slices = data.instances.map(function (i) { return { sop: i.sop, frame: 1 }; });
        slider.max = st.slices.length;
        slider.disabled = st.slices.length < 2;
        return show(Math.floor((st.slices.length - 1) / 2));
      }).catch(function (e) { say("Could not load the series (" + e.message + ")."); });
  }

  function zoomBy(factor) { st.zoom = Math.max(0.1, Math.min(20, st.zoom * factor)); draw(); }

  function reset() {
    st.zoom = 1; st.panX = st.panY = 0; st.userWindow = false;
    if (st.frame) { st.wc = st.frame.wc; st.ww = st.frame.ww; }
    draw();
  }

  function preset(button) {
    if (!st.frame) { return; }
    if (button.dataset.preset === "default") {
      st.userWindow = false;
      setWindow(st.frame.wc, st.frame.ww, false);
    } else {
      setWindow(+button.dataset.center, +button.dataset.width, true);
    }
    say(button.textContent + " window: centre " + Math.round(st.wc) + ", width " +
        Math.round(st.ww));
  }

  document.querySelectorAll(".series-button").forEach(function (b) {
    b.addEventListener("click", function () { loadSeries(b.dataset.series, b); });
  });
  document.querySelectorAll(".preset").forEach(function (b) {
    b.addEventListener("click", function () { preset(b); });
  });
  document.getElementById("zoom-in").addEventListener("click", function () { zoomBy(1.25); });
  document.getElementById("zoom-out").addEventListener("click", function () { zoomBy(0.8); });
  document.getElementById("reset").addEventListener("click", reset);
  slider.addEventListener("input", function () { show(+slider.value - 1); });
  function typedWindow() {
    var c = parseFloat(wcInput.value), w = parseFloat(wwInput.value);
    if (isFinite(c) && isFinite(w) && w >= 1) { setWindow(c, w, true); }
  }
  wcInput.addEventListener("change", typedWindow);
  wwInput.addEventListener("change", typedWindow);

  canvas.addEventListener("wheel", function (e) {
    e.preventDefault();
    if (e.ctrlKey) { zoomBy(e.deltaY < 0 ? 1.1 : 0.9); } else { show(st.index + (e.deltaY > 0 ? 1 : -1)); }
  }, { passive: false });

  canvas.addEventListener("keydown", function (e) {
    var k = e.key, handled = true;
    if (k === "ArrowDown" || k === "ArrowRight" || k === "PageDown") { show(st.index + 1); }
    else if (k === "ArrowUp" || k === "ArrowLeft" || k === "PageUp") { show(st.index - 1); }
    else if (k === "Home") { show(0); }
    else if (k === "End") { show(st.slices.length - 1); }
    else if (k === "+" || k === "=") { zoomBy(1.25); }
    else if (k === "-") { zoomBy(0.8); }
    else if (k === "r" || k === "R") { reset(); }
    else { handled = false; }
    if (handled) { e.preventDefault(); }
  });

  var drag = null;
  canvas.addEventListener("pointerdown", function (e) {
    canvas.focus();
    drag = { x: e.clientX, y: e.clientY, pan: e.shiftKey || e.button !== 0,
             wc: st.wc, ww: st.ww, panX: st.panX, panY: st.panY };
    if (canvas.setPointerCapture) { canvas.setPointerCapture(e.pointerId); }
  });
  canvas.addEventListener("pointermove", function (e) {
    if (!drag || !st.frame) { return; }
    var dx = e.clientX - drag.x, dy = e.clientY - drag.y;
    if (drag.pan) {
      st.panX = drag.panX + dx; st.panY = drag.panY + dy; draw();
    } else if (!st.frame.colour) {
      var range = Math.max(1, st.frame.max - st.frame.min);
      var step = Math.max(range / 512, 0.01);
      setWindow(drag.wc + dy * step, drag.ww + dx * step, true);
    }
  });
  function endDrag() { drag = null; }
  canvas.addEventListener("pointerup", endDrag);
  canvas.addEventListener("pointercancel", endDrag);
  canvas.addEventListener("contextmenu", function (e) { e.preventDefault(); });

  var first = document.querySelector(".series-button");
  if (first) { loadSeries(first.dataset.series, first); } else { say("No images."); }
})();
