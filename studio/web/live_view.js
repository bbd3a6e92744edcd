// The Live page's frame for Distill Studio (studio/live_view.py). It speaks Streamlit's
// component protocol by hand, as streamlit-component-lib does: say "ready", read each
// "streamlit:render" message's arguments, report the frame's height, and send a value back.
//
// Arguments: feed (the job's JSON file, beside this script), stage (what the Streamlit part of
// the page was drawn for), smoothing (the loss curves' EMA) and log_scale (the loss axis). The
// feed is fetched about once a second until the job has finished; nothing is redrawn that did
// not change.

const POLL_MS = 1000;
const HIDDEN_POLL_MS = 5000;  // a tab in the background needs no fresh curves

// TensorBoard-style exponential moving average, debiased so the start is not pulled to 0.
// Gaps (null) stay gaps.
function ema(values, smoothing) {
  let avg = 0, weight = 0;
  return values.map((v) => {
    if (v === null || v === undefined) return null;
    avg = smoothing * avg + (1 - smoothing) * v;
    weight = smoothing * weight + (1 - smoothing);
    return weight ? avg / weight : v;
  });
}

// The traces the server marked as per-step lines (meta "ema"), smoothed.
function smoothed(data, smoothing) {
  if (!smoothing) return data;
  return data.map((t) => (t.meta === "ema" ? {...t, y: ema(t.y, smoothing)} : t));
}

// The app's theme (light or dark, its font) on a transparent background, as st.plotly_chart does.
function themed(layout, theme) {
  if (!theme) return layout;
  const grid = theme.base === "dark" ? "rgba(250, 250, 250, 0.12)" : "rgba(49, 51, 63, 0.1)";
  const axis = (a) => ({gridcolor: grid, zerolinecolor: grid, ...a});
  return {...layout, font: {family: theme.font, color: theme.textColor, ...layout.font},
          paper_bgcolor: "rgba(0, 0, 0, 0)", plot_bgcolor: "rgba(0, 0, 0, 0)",
          xaxis: axis(layout.xaxis || {}), yaxis: axis(layout.yaxis || {})};
}

function tell(type, fields) {
  window.parent.postMessage({isStreamlitMessage: true, type: type, ...fields}, "*");
}

const view = {
  args: null, theme: null, feed: null, text: null, timer: null, asked: new Set(), drawn: {}, outlines: {},
  height: 0, misses: 0,
};

function byId(id) { return document.getElementById(id); }

function setText(id, text) {
  const el = byId(id);
  if (el.textContent !== text) el.textContent = text;
}

// Everything a chart shows but its points: when only the points changed, the lines can move
// without redrawing axes, legend and title.
function outline(data, layout) {
  return JSON.stringify([layout, data.map((t) => ({...t, x: null, y: null}))]);
}

function draw(id, spec, extra) {
  const key = JSON.stringify([spec, extra, view.theme]);
  if (view.drawn[id] === key) return;  // the same curves with the same settings
  view.drawn[id] = key;
  // "meta" holds the log axis's range; it is left out of what is drawn, so that on a linear axis
  // a change of decade alone does not count as a change of shape (and a full redraw).
  const {meta, ...plain} = themed(spec.layout, view.theme);
  const log = id === "loss" && view.args.log_scale && meta && meta.log_range;
  const layout = log ? {...plain, yaxis: {...plain.yaxis, type: "log", range: meta.log_range}} : plain;
  const data = id === "loss" ? smoothed(spec.data, view.args.smoothing) : spec.data;
  const el = byId(id), shape = outline(data, layout);
  if (view.outlines[id] === shape && fixedAxes(layout)) {
    // Plotly.animate without redraw moves the lines only: about half the CPU of Plotly.react
    // (21 vs 45 ms a redraw in a 2-core machine's headless Chromium), taken from training.
    Plotly.animate(el, {data: data.map((t) => ({x: t.x, y: t.y})), traces: data.map((_, i) => i)},
                   {transition: {duration: 0}, frame: {duration: 0, redraw: false}});
    return;
  }
  view.outlines[id] = shape;
  el.style.height = layout.height + "px";
  Plotly.react(el, data, layout, {responsive: true, displaylogo: false});
}

// Lines moved without a redraw keep the axes as they are, so both must have a set range.
function fixedAxes(layout) {
  return ["xaxis", "yaxis"].every((a) => layout[a] && Array.isArray(layout[a].range));
}

function metrics(rows) {
  const box = byId("metrics");
  if (box.children.length !== rows.length) {
    box.replaceChildren(...rows.map(() => {
      const cell = document.createElement("div");
      cell.className = "metric";
      cell.innerHTML = '<div class="name"></div><div class="value"></div>';
      return cell;
    }));
  }
  rows.forEach(([name, value], i) => {
    const cell = box.children[i];
    if (cell.children[0].textContent !== name) cell.children[0].textContent = name;
    if (cell.children[1].textContent !== value) cell.children[1].textContent = value;
  });
}

function render() {
  const feed = view.feed;
  byId("waiting").hidden = !!feed;
  byId("live").hidden = !feed;
  if (!feed) return;
  setText("label", feed.label);
  byId("fill").style.width = (100 * feed.progress).toFixed(1) + "%";
  byId("bar").setAttribute("aria-valuenow", Math.round(100 * feed.progress));
  metrics(feed.metrics);
  setText("note", feed.note || "");
  byId("note").hidden = !feed.note;
  draw("loss", feed.loss, [view.args.smoothing, !!view.args.log_scale]);
  draw("accuracy", feed.accuracy, null);
  setText("caption", feed.caption);
  // The Streamlit part of the page (badge, Stop, messages) follows the run's stage: ask once
  // per new stage for a rerun. "asked" keeps a stale feed from asking again and again.
  if (feed.stage !== view.args.stage && !view.asked.has(feed.stage)) {
    view.asked.add(feed.stage);
    tell("streamlit:setComponentValue", {value: feed.stage, dataType: "json"});
  }
  if (typeof ResizeObserver === "undefined") resize();  // else the observer reports size changes
}

function resize() {
  const height = Math.ceil(document.body.getBoundingClientRect().height);
  if (height !== view.height) {
    view.height = height;
    tell("streamlit:setFrameHeight", {height: height});
  }
}

async function poll() {
  view.timer = null;
  const url = view.args.feed;
  let text = null, fresh = null;
  try {
    const response = await fetch(url + "?t=" + Date.now(), {cache: "no-store"});
    if (response.ok) text = await response.text();
    if (text !== null && text !== view.text) fresh = JSON.parse(text);
  } catch (error) {
    text = null;  // the server is restarting, or gone: counted as a miss below
  }
  if (url !== view.args.feed) return;  // the page moved to another job meanwhile; its own poll runs
  if (text !== null) {
    view.misses = 0;
    if (fresh) {
      view.text = text;
      view.feed = fresh;
      render();
    }
  } else {
    view.misses += 1;  // not written yet (the job was just submitted), or the server is restarting
    byId("waiting").textContent = view.misses > 10
      ? "No news from the server for a while. Is it still running? Refresh the page to try again."
      : "Waiting for the run's first report…";
  }
  if (view.feed && view.feed.finished) return;  // the final state is drawn; nothing more will come
  view.timer = setTimeout(poll, document.hidden ? HIDDEN_POLL_MS : POLL_MS);
}

window.addEventListener("message", (event) => {
  const msg = event.data;
  if (!msg || msg.type !== "streamlit:render") return;
  const before = view.args;
  view.args = msg.args;
  view.theme = msg.theme || null;
  if (view.theme) {
    const root = document.documentElement.style;
    root.setProperty("--text", view.theme.textColor);
    root.setProperty("--primary", view.theme.primaryColor);
    root.setProperty("--font", view.theme.font);
    root.setProperty("--track", view.theme.base === "dark" ? "rgba(250, 250, 250, 0.15)" : "rgba(49, 51, 63, 0.12)");
  }
  if (!before || before.feed !== view.args.feed) {  // first render, or another job: start over
    if (view.timer) clearTimeout(view.timer);
    Object.assign(view, {feed: null, text: null, drawn: {}, outlines: {}, asked: new Set(), misses: 0});
    render();
    poll();
  } else {
    render();  // new smoothing or theme: redraw from the feed we have
  }
});

document.addEventListener("visibilitychange", () => {
  if (!document.hidden && view.timer) {  // back in front: fresh data now, not in 5 s
    clearTimeout(view.timer);
    poll();
  }
});

if (typeof ResizeObserver !== "undefined") new ResizeObserver(resize).observe(document.body);
tell("streamlit:componentReady", {apiVersion: 1});
