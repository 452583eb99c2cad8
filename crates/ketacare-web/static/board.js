// The live board of the treatment room. The server sends the whole board as a server-sent
// event after every change and every few seconds; this script only draws it. No build step,
// no inline script (the page's Content-Security-Policy forbids it).
(function () {
  "use strict";
  var board = document.getElementById("board");
  if (!board) return;
  var status = document.getElementById("board-status");
  var banner = document.getElementById("alarm-banner");
  var soundBtn = document.getElementById("sound");
  var audio = null, soundOn = false, beeper = null;
  var SERIES = [["systolic", "sbp"], ["diastolic", "dbp"], ["heart_rate", "hr"], ["spo2", "spo2"], ["respiratory_rate", "rr"]];
  var SVG = "http://www.w3.org/2000/svg";

  soundBtn.addEventListener("click", function () {
    soundOn = !soundOn;
    if (soundOn && !audio) {
      var Ctx = window.AudioContext || window.webkitAudioContext;
      if (Ctx) audio = new Ctx();
    }
    soundBtn.textContent = soundOn ? "Turn alarm sound off" : "Turn alarm sound on";
    soundBtn.setAttribute("aria-pressed", String(soundOn));
  });

  function beep(freq) {
    if (!soundOn || !audio) return;
    var o = audio.createOscillator(), g = audio.createGain();
    o.frequency.value = freq;
    g.gain.value = 0.2;
    o.connect(g);
    g.connect(audio.destination);
    o.start();
    o.stop(audio.currentTime + 0.3);
  }

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) e.className = cls;
    if (text !== undefined && text !== null) e.textContent = text;
    return e;
  }

  function chart(trend) {
    var w = 260, h = 70, svg = document.createElementNS(SVG, "svg");
    svg.setAttribute("viewBox", "0 0 " + w + " " + h);
    svg.setAttribute("class", "trend");
    svg.setAttribute("role", "img");
    svg.setAttribute("aria-label", "Vital signs over the last 30 minutes");
    var now = Date.now(), from = now - 30 * 60 * 1000;
    SERIES.forEach(function (s) {
      var pts = trend.filter(function (p) { return p.vital === s[0]; }).map(function (p) {
        var x = (Date.parse(p.t) - from) / (now - from) * w;
        var y = h - Math.max(0, Math.min(220, parseFloat(p.v))) / 220 * h;
        return x.toFixed(1) + "," + y.toFixed(1);
      });
      if (!pts.length) return;
      var line = document.createElementNS(SVG, "polyline");
      line.setAttribute("points", pts.join(" "));
      line.setAttribute("class", "series " + s[1]);
      svg.appendChild(line);
    });
    return svg;
  }

  function age(s) {
    return s < 60 ? s + " s ago" : Math.floor(s / 60) + " min ago";
  }

  // The server's clock minus this screen's: ages count on between events by the server's time.
  var skew = 0;
  function tickAges() {
    var now = Date.now() + skew;
    board.querySelectorAll("dd[data-at]").forEach(function (dd) {
      var s = Math.max(0, Math.round((now - Date.parse(dd.getAttribute("data-at"))) / 1000));
      dd.textContent = dd.getAttribute("data-value") + " · " + age(s);
      dd.classList.toggle("stale", s > 120);
    });
  }
  setInterval(tickAges, 1000);

  function render(data) {
    if (data.server_now) skew = Date.parse(data.server_now) - Date.now();
    var chairs = data.chairs || [];
    var live = [];
    var cards = chairs.map(function (c) {
      var critical = c.alarms.some(function (a) { return a.level === "critical"; });
      var card = el("article", "chair" + (c.alarms.length ? (critical ? " alarm-critical" : " alarm-warning") : ""));
      card.setAttribute("data-chair", c.chair);
      card.setAttribute("data-phase", c.phase);
      var head = el("h2", null, c.chair + (c.initials ? " · " + c.initials : ""));
      card.appendChild(head);
      var info = c.phase_label + " · " + c.elapsed_min + " min";
      if (c.since_dose_min !== null && c.since_dose_min !== undefined) info += " · dose +" + c.since_dose_min + " min";
      if (!c.monitored) info += " · vitals by hand";
      card.appendChild(el("p", "muted", info));
      var dl = el("dl", "latest");
      c.latest.forEach(function (l) {
        dl.appendChild(el("dt", null, l.label));
        var dd = el("dd", l.age_s > 120 ? "stale" : "", l.value + " " + l.unit + " · " + age(l.age_s));
        dd.setAttribute("data-vital", l.vital);
        dd.setAttribute("data-at", l.at);
        dd.setAttribute("data-value", l.value + " " + l.unit);
        dl.appendChild(dd);
      });
      if (!c.latest.length) dl.appendChild(el("dd", "muted", "No readings yet"));
      card.appendChild(dl);
      card.appendChild(chart(c.trend));
      if (c.alarms.length) {
        var ul = el("ul", "alarms");
        c.alarms.forEach(function (a) {
          var li = el("li", "alarm " + a.level, a.level.toUpperCase() + (a.escalated ? " (escalated)" : "") + " · " + a.message);
          li.setAttribute("data-rule", a.rule);
          ul.appendChild(li);
          live.push(c.chair + ": " + a.message);
        });
        card.appendChild(ul);
      }
      c.prompts.forEach(function (p) { card.appendChild(el("p", "prompt", p)); });
      if (data.identified && c.session_id) {
        var a = el("a", "button", c.alarms.length ? "Open and acknowledge" : "Open session");
        a.href = "/sessions/" + c.session_id;
        card.appendChild(a);
      }
      return card;
    });
    board.replaceChildren.apply(board, cards.length ? cards : [el("p", "muted", "No active sessions.")]);
    if (live.length) {
      banner.hidden = false;
      banner.textContent = "ALARM · " + live.join(" · ");
    } else {
      banner.hidden = true;
      banner.textContent = "";
    }
    var anyCritical = chairs.some(function (c) { return c.alarms.some(function (a) { return a.level === "critical"; }); });
    if (live.length && !beeper) {
      beeper = setInterval(function () { beep(anyCritical ? 880 : 660); }, 1500);
      beep(anyCritical ? 880 : 660);
    } else if (!live.length && beeper) {
      clearInterval(beeper);
      beeper = null;
    }
    status.textContent = "Live · updated " + new Date().toLocaleTimeString();
  }

  var es = new EventSource(board.getAttribute("data-events"));
  es.addEventListener("board", function (e) { render(JSON.parse(e.data)); });
  // A board that is not live must not look live: it says so in red and sounds.
  function notLive(text) {
    board.classList.add("not-live");
    banner.hidden = false;
    banner.textContent = "NOT LIVE · " + text;
    status.textContent = text;
    beep(440);
  }
  es.addEventListener("board", function () { board.classList.remove("not-live"); });
  es.addEventListener("expired", function () {
    es.close();
    notLive("Your login ended: log in again, or use the room display. Vitals and alarms here are no longer updated.");
  });
  es.addEventListener("problem", function (e) { notLive(e.data); });
  es.onerror = function () { notLive("Connection to the server lost: reconnecting. Vitals and alarms here are not up to date."); };
})();
