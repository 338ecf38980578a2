/* Veo Studio: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  // The page's words for what this script shows (data-word-* on <body>, rendered in the
  // page's language by templates/base.html), with English if a page has none.
  function word(name, english) {
    return (document.body && document.body.dataset[name]) || english;
  }

  function onReady(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  // The server's image rules and their words (generations/validation.py), rendered into
  // the page with json_script: the page refuses what the server would, before the upload.
  function readRules(input) {
    var script = input.dataset.rules && document.getElementById(input.dataset.rules);
    if (!script) return null;
    try { return JSON.parse(script.textContent); } catch (e) { return null; }
  }

  // What the server would say of this file's size, or "" if nothing.
  function refusalOfSize(file, rules) {
    if (file.size === 0) return rules.messages.empty;
    if (file.size > rules.max_bytes) return rules.messages.too_large;
    return "";
  }

  // Whether the file begins as one of the accepted formats does. Like the server, this
  // looks at the content, never at the file's name or type.
  function hasAcceptedSignature(bytes, rules) {
    return rules.signatures.some(function (parts) {
      return parts.every(function (part) {
        var offset = part[0], hex = part[1];
        for (var i = 0; i < hex.length / 2; i++) {
          if (bytes[offset + i] !== parseInt(hex.substr(i * 2, 2), 16)) return false;
        }
        return true;
      });
    });
  }

  // What the server would say of an image of w x h pixels, or "" if nothing.
  function refusalOfPixels(w, h, rules) {
    if (w * h > rules.max_pixels) return rules.messages.too_many_pixels;
    if (Math.min(w, h) < rules.min_side) {
      return rules.messages.too_small.replace("{width}", w).replace("{height}", h);
    }
    return "";
  }

  // What the server would say of this file, or "" if nothing: the checks of a chosen
  // image without its preview (the second and later files of a multiple chooser).
  function refusalOfFile(file, rules) {
    var refused = refusalOfSize(file, rules);
    if (refused) return Promise.resolve(refused);
    return file.slice(0, 16).arrayBuffer().then(function (buffer) {
      var accepted = hasAcceptedSignature(new Uint8Array(buffer), rules);
      return new Promise(function (resolve) {
        var img = new Image();
        var url = URL.createObjectURL(file);
        img.onload = function () {
          URL.revokeObjectURL(url);
          if (!accepted) resolve(rules.messages.wrong_format);
          else resolve(refusalOfPixels(img.naturalWidth, img.naturalHeight, rules));
        };
        img.onerror = function () {
          URL.revokeObjectURL(url);
          resolve(accepted ? "" : rules.messages.unreadable);
        };
        img.src = url;
      });
    });
  }

  // An image file input the server rendered plain (the model picker's frame and reference
  // slots) gets what a dropzone needs around it, so it is checked and previewed the same.
  function dropzoneAround(input) {
    if (!input.id || input.closest("[data-dropzone]")) return;
    if (!document.getElementById("image-rules")) return;
    var zone = document.createElement("div");
    zone.className = "dropzone-plain";
    zone.setAttribute("data-dropzone", "");
    input.parentNode.insertBefore(zone, input);
    zone.appendChild(input);
    var preview = document.createElement("img");
    preview.className = "dropzone__preview";
    preview.alt = "";
    preview.hidden = true;
    preview.setAttribute("data-preview", "");
    var meta = document.createElement("span");
    meta.className = "dropzone__meta";
    meta.setAttribute("aria-live", "polite");
    meta.setAttribute("data-meta", "");
    zone.appendChild(preview);
    zone.appendChild(meta);
    var refusal = document.createElement("p");
    refusal.className = "errorlist field-refusal";
    refusal.id = input.id + "-refusal";
    refusal.setAttribute("role", "alert");
    refusal.setAttribute("data-testid", input.name + "-refusal");
    refusal.hidden = true;
    zone.parentNode.insertBefore(refusal, zone.nextSibling);
    input.dataset.rules = "image-rules";
    input.dataset.refusal = refusal.id;
    var described = input.getAttribute("aria-describedby");
    input.setAttribute("aria-describedby", (described ? described + " " : "") + refusal.id);
  }

  // Image chooser: the rules checked before upload, preview, shape hints, drag and drop.
  // Set up once per chooser, on page load and for each one htmx swaps in.
  function setupDropzone(zone) {
    var input = zone.querySelector('input[type="file"]');
    var preview = zone.querySelector("[data-preview]");
    var reused = zone.querySelector("[data-reused]");
    var meta = zone.querySelector("[data-meta]");
    var hint = zone.querySelector("[data-hint]");
    if (!input || !preview || zone.dataset.dropzoneReady) return;
    zone.dataset.dropzoneReady = "1";
    var rules = readRules(input);
    var refusal = input.dataset.refusal && document.getElementById(input.dataset.refusal);
    var objectUrl = null;

    function showRefusal(message) {
      if (!refusal) return;
      refusal.textContent = message;
      refusal.hidden = !message;
      if (message) input.setAttribute("aria-invalid", "true");
      else input.removeAttribute("aria-invalid");
    }

    function reset() {
      preview.hidden = true;
      preview.removeAttribute("src");
      if (reused) reused.hidden = false;
      if (hint) hint.hidden = !!reused;
      meta.textContent = "";
      meta.classList.remove("is-warning");
    }

    // The file is not sent: the chooser is emptied and the reason shown beside it.
    function refuse(message) {
      input.value = "";
      if (objectUrl) { URL.revokeObjectURL(objectUrl); objectUrl = null; }
      reset();
      showRefusal(message);
    }

    function describe(img, file) {
      var w = img.naturalWidth, h = img.naturalHeight;
      var refused = rules && refusalOfPixels(w, h, rules);
      if (refused) { refuse(refused); return; }
      var ratio = w / h;
      var notes = [w + "×" + h, Math.round(file.size / 1024).toLocaleString() + " KB"];
      var warn = false;
      if (Math.abs(ratio - 16 / 9) > 0.02 && Math.abs(ratio - 9 / 16) > 0.02) {
        notes.push("not 16:9 or 9:16: it will be cropped"); warn = true;
      }
      meta.textContent = file.name + " · " + notes.join(" · ");
      meta.classList.toggle("is-warning", warn);
      // Suggest the matching aspect ratio, unless one was chosen by hand or "auto" (the
      // image decides) is chosen.
      var wanted = ratio < 1 ? "9:16" : "16:9";
      var radio = document.querySelector('input[name="aspect_ratio"][value="' + wanted + '"]');
      var touched = input.form ? input.form.dataset.ratioTouched : zone.dataset.ratioTouched;
      var auto = document.querySelector('input[name="aspect_ratio"][value="auto"]:checked');
      if (radio && !radio.checked && !touched && !auto) {
        radio.checked = true;
        radio.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }

    function show() {
      var file = input.files && input.files[0];
      if (objectUrl) { URL.revokeObjectURL(objectUrl); objectUrl = null; }
      showRefusal("");
      if (!file) { reset(); return; }
      if (!rules) { showPreview(file, true); return; }
      var refused = refusalOfSize(file, rules);
      if (refused) { refuse(refused); return; }
      file.slice(0, 16).arrayBuffer().then(function (buffer) {
        if (input.files[0] !== file) return;  // another file was chosen meanwhile
        showPreview(file, hasAcceptedSignature(new Uint8Array(buffer), rules));
      });
      var others = Array.prototype.slice.call(input.files, 1);
      Promise.all(others.map(function (other) { return refusalOfFile(other, rules); }))
        .then(function (refusals) {
          var first = refusals.filter(Boolean)[0];
          if (first && input.files[0] === file) refuse(first);
        });
    }

    // Show the file; one of another format is refused once the browser has read it (an
    // image of another format, or no image at all: the server's two answers).
    function showPreview(file, accepted) {
      objectUrl = URL.createObjectURL(file);
      preview.onload = function () {
        if (!accepted) { refuse(rules.messages.wrong_format); return; }
        describe(preview, file);
      };
      preview.onerror = function () {
        if (!accepted) { refuse(rules.messages.unreadable); return; }
        preview.hidden = true;
        meta.textContent = file.name + " · this file does not look like an image we can read";
        meta.classList.add("is-warning");
      };
      preview.src = objectUrl;
      preview.hidden = false;
      if (reused) reused.hidden = true;
      if (hint) hint.hidden = true;
    }

    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.add("is-dragover"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("is-dragover"); });
    });
    if (reused && hint) hint.hidden = true;
    if (input.files && input.files.length) show();
  }

  // Character counter for the prompt.
  function setupCounter(textarea) {
    var counter = document.getElementById(textarea.dataset.counter);
    var max = parseInt(textarea.getAttribute("maxlength"), 10);
    if (!counter || !max) return;
    function update() {
      var n = textarea.value.length;
      counter.textContent = n.toLocaleString() + " / " + max.toLocaleString();
      counter.classList.toggle("is-over", n > max);
    }
    textarea.addEventListener("input", update);
    update();
  }

  // "Copy" buttons for secrets.
  function setupCopy(button) {
    button.addEventListener("click", function () {
      var target = document.getElementById(button.dataset.copy);
      if (!target) return;
      var text = target.value || target.textContent;
      function done() {
        var label = button.textContent;
        button.textContent = word("wordCopied", "Copied");
        setTimeout(function () { button.textContent = label; }, 1800);
      }
      if (navigator.clipboard && window.isSecureContext) {
        navigator.clipboard.writeText(text).then(done, function () {
          target.select(); document.execCommand("copy"); done();
        });
      } else {
        target.select();
        document.execCommand("copy");
        done();
      }
    });
  }

  // A submitted form cannot be sent twice by a double click.
  function setupSubmitOnce(form) {
    form.addEventListener("submit", function () {
      var button = form.querySelector('button[type="submit"]') ||
        document.querySelector('button[type="submit"][form="' + form.id + '"]');
      if (!button) return;
      setTimeout(function () {
        button.disabled = true;
        if (button.dataset.busyLabel) button.textContent = button.dataset.busyLabel;
      }, 0);
    });
  }

  // The price box asks for the price of the options as they change: only the priced ones,
  // those its hx-include names (a prompt's change event comes when it loses focus, which
  // a click on "Generate video" causes: asking then would disable the button under the
  // click). Until the box answers, no video is sent: its button is disabled and says the
  // price is being updated, and a submit by other means (Enter in a field) is dropped.
  // Sent in between, the form would carry the earlier options' quote, which the server
  // refuses ("The price shown was out of date"). The box's new content brings its own
  // button; a failed request gives the old one back.
  var PRICE_BOX = "[data-price-box]";

  function priceButtons(box) {
    return box.querySelectorAll('button[type="submit"]:not([data-disabled-by-server])');
  }

  function setupPriceWait() {
    document.addEventListener("change", function (event) {
      var box = document.querySelector(PRICE_BOX);
      var priced = box && box.getAttribute("hx-include");
      if (priced && event.target.matches && event.target.matches(priced)) {
        box.dispatchEvent(new CustomEvent("priced-option-changed"));
      }
    });
    document.addEventListener("htmx:beforeSend", function (event) {
      var box = event.target;
      if (!box.matches || !box.matches(PRICE_BOX)) return;
      box.setAttribute("aria-busy", "true");
      priceButtons(box).forEach(function (button) {
        button.disabled = true;
        if (button.dataset.pricingLabel && !button.dataset.label) {
          button.dataset.label = button.textContent;
          button.textContent = button.dataset.pricingLabel;
        }
      });
    });
    document.addEventListener("htmx:afterRequest", function (event) {
      var box = event.target;
      if (!box.matches || !box.matches(PRICE_BOX)) return;
      box.removeAttribute("aria-busy");
      priceButtons(box).forEach(function (button) {
        button.disabled = false;
        if (button.dataset.label) {
          button.textContent = button.dataset.label;
          delete button.dataset.label;
        }
      });
    });
    // Capture: before the submit-once handler marks the button as sending. The form is
    // the one the busy box's button and quote belong to (their form attribute).
    document.addEventListener("submit", function (event) {
      var form = event.target;
      if (form.id && document.querySelector(PRICE_BOX + '[aria-busy="true"] [form="' + form.id + '"]')) {
        event.preventDefault();
        event.stopImmediatePropagation();
      }
    }, true);
  }

  // Confirm before destructive actions.
  function setupConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  // Honest waits: a video that finishes while the tab is hidden counts in the page's title
  // ("(2) My videos · Veo Studio", reset when the tab is seen again) and, if the user said
  // yes to the "Notify me" button, raises a notification. Cards and the status panel carry
  // data-status and data-url; htmx swaps them as they change (generations/views.py).
  var waits = { inFlight: {}, ready: 0, title: "", reloadWhenVisible: false };
  var FINAL = ["succeeded", "failed", "canceled"];

  function isFinal(status) { return FINAL.indexOf(status) !== -1; }

  function canNotify() { return "Notification" in window; }

  function watch(el) {
    var url = el.dataset.url;
    if (url && el.dataset.status && !isFinal(el.dataset.status)) waits.inFlight[url] = true;
  }

  function showReadyCount() {
    document.title = waits.ready ? "(" + waits.ready + ") " + waits.title : waits.title;
  }

  function notify(el) {
    if (!canNotify() || Notification.permission !== "granted") return;
    var ready = el.dataset.status === "succeeded";
    var title = ready
      ? word("wordVideoReady", "Your video is ready")
      : word("wordVideoFailed", "A video could not be made");
    var note = new Notification(title, {
      body: el.dataset.prompt || "", tag: el.dataset.url
    });
    note.onclick = function () { window.focus(); window.location.href = el.dataset.url; note.close(); };
  }

  // `el` (a card or the status panel, maybe parsed from a response) has just turned final.
  function finished(el) {
    var url = el.dataset.url;
    if (!url || !waits.inFlight[url] || !isFinal(el.dataset.status)) return;
    delete waits.inFlight[url];
    if (!document.hidden || el.dataset.status === "canceled") return;
    if (el.dataset.status === "succeeded") { waits.ready += 1; showReadyCount(); }
    notify(el);
  }

  // The opt-in: permission is asked only when this button is clicked.
  function offerNotifications() {
    if (!canNotify() || Notification.permission !== "default") return;
    if (!Object.keys(waits.inFlight).length || document.querySelector("[data-notify-opt-in]")) return;
    var slot = document.querySelector("[data-notify-slot]");
    if (!slot) {
      var card = document.querySelector('[data-testid="card"][hx-get]');
      var list = card && card.closest("ul, ol");
      if (!list) return;
      slot = document.createElement("p");
      slot.className = "notify-opt-in";
      list.parentNode.insertBefore(slot, list);
    }
    var button = document.createElement("button");
    button.type = "button";
    button.className = "button button--secondary button--small";
    button.dataset.notifyOptIn = "";
    button.textContent = word("wordNotifyOffer", "Notify me when videos are ready");
    button.addEventListener("click", function () {
      var answeredOnce = false;
      function answered(permission) {  // older browsers call back, newer ones resolve
        if (answeredOnce) return;
        answeredOnce = true;
        var note = document.createElement("span");
        note.className = "muted";
        note.setAttribute("role", "status");
        note.textContent = permission === "granted"
          ? word("wordNotifyOn", "You will be notified when a video is ready.")
          : word("wordNotifyOff", "Notifications are off for this site in your browser.");
        button.replaceWith(note);
      }
      var asked = Notification.requestPermission(answered);
      if (asked && asked.then) asked.then(answered);
    });
    slot.appendChild(button);
  }

  function setupWaits() {
    waits.title = document.title;
    document.querySelectorAll("[data-status][data-url]").forEach(watch);
    offerNotifications();
    document.addEventListener("visibilitychange", function () {
      if (document.hidden) return;
      waits.ready = 0;
      showReadyCount();
      if (waits.reloadWhenVisible) window.location.reload();
    });
    // A swapped card or panel: a new one in flight is watched, one that turned final counts.
    document.addEventListener("htmx:load", function (event) {
      var el = event.target;
      if (!el.dataset || !el.dataset.url || !el.dataset.status) return;
      if (isFinal(el.dataset.status)) finished(el);
      else watch(el);
    });
    // The generation page reloads once its video is final (HX-Refresh). While the tab is
    // hidden the reload waits until it is seen again, so the count stays in the title.
    document.addEventListener("htmx:beforeOnLoad", function (event) {
      var xhr = event.detail.xhr;
      if (!xhr || xhr.getResponseHeader("HX-Refresh") !== "true") return;
      var fresh = new DOMParser().parseFromString(xhr.responseText, "text/html")
        .querySelector("[data-status][data-url]");
      if (fresh) finished(fresh);
      if (document.hidden) {
        waits.reloadWhenVisible = true;
        event.preventDefault();
      }
    });
    // No more polls for what is known to be final while the page waits to be seen.
    document.addEventListener("htmx:beforeRequest", function (event) {
      if (waits.reloadWhenVisible) event.preventDefault();
    });
  }

  // The elements of `root` (root itself included) that match `selector`.
  function within(root, selector) {
    var found = Array.prototype.slice.call(root.querySelectorAll(selector));
    if (root.matches && root.matches(selector)) found.unshift(root);
    return found;
  }

  function setupImageChoosers(root) {
    within(root, 'input[type="file"][accept^="image/"]').forEach(dropzoneAround);
    within(root, "[data-dropzone]").forEach(setupDropzone);
  }

  function init(root) {
    setupImageChoosers(root);
    root.querySelectorAll("textarea[data-counter]").forEach(setupCounter);
    root.querySelectorAll("[data-copy]").forEach(setupCopy);
    root.querySelectorAll("form[data-submit-once]").forEach(setupSubmitOnce);
    root.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
  }

  onReady(function () { init(document); setupWaits(); setupPriceWait(); });
  // An aspect ratio chosen by hand is kept when an image is chosen after it (the radios
  // are swapped in and out with the model, so the page listens, not each radio).
  document.addEventListener("click", function (event) {
    var radio = event.target.closest && event.target.closest('input[name="aspect_ratio"]');
    if (radio && radio.form) radio.form.dataset.ratioTouched = "1";
  });
  // Coming back with the browser's back button: submit buttons work again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll('form[data-submit-once] button[type="submit"], button[form][type="submit"]')
      .forEach(function (button) { button.disabled = button.hasAttribute("data-disabled-by-server"); });
  });
  // Content swapped in by htmx (cards that finished, the price box, the model picker's
  // image slots) gets the same care.
  document.addEventListener("htmx:load", function (event) {
    if (event.target !== document.body) {
      event.target.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
      setupImageChoosers(event.target);
    }
  });
})();
