/* Veo Studio: small progressive enhancements. Every page works without this file. */
(function () {
  "use strict";

  function onReady(fn) {
    if (document.readyState !== "loading") fn();
    else document.addEventListener("DOMContentLoaded", fn);
  }

  // Image chooser: preview, size and shape hints, drag and drop.
  function setupDropzone(zone) {
    var input = zone.querySelector('input[type="file"]');
    var preview = zone.querySelector("[data-preview]");
    var meta = zone.querySelector("[data-meta]");
    var hint = zone.querySelector("[data-hint]");
    if (!input || !preview) return;
    var objectUrl = null;

    function describe(img, file) {
      var w = img.naturalWidth, h = img.naturalHeight;
      var ratio = w / h;
      var notes = [w + "×" + h, Math.round(file.size / 1024).toLocaleString() + " KB"];
      var warn = false;
      var maxMb = parseInt(input.dataset.maxMb, 10);
      if (maxMb && file.size > maxMb * 1024 * 1024) {
        // The server refuses it unread (413); say so before the upload starts.
        notes.push("larger than " + maxMb + " MB: choose a smaller image"); warn = true;
      }
      if (Math.min(w, h) < 720) { notes.push("below 720p: the video may look soft"); warn = true; }
      if (Math.abs(ratio - 16 / 9) > 0.02 && Math.abs(ratio - 9 / 16) > 0.02) {
        notes.push("not 16:9 or 9:16: it will be cropped"); warn = true;
      }
      meta.textContent = file.name + " · " + notes.join(" · ");
      meta.classList.toggle("is-warning", warn);
      // Suggest the matching aspect ratio.
      var wanted = ratio < 1 ? "9:16" : "16:9";
      var radio = document.querySelector('input[name="aspect_ratio"][value="' + wanted + '"]');
      if (radio && !radio.checked && !zone.dataset.ratioTouched) {
        radio.checked = true;
        radio.dispatchEvent(new Event("change", { bubbles: true }));
      }
    }

    function show() {
      var file = input.files && input.files[0];
      if (objectUrl) URL.revokeObjectURL(objectUrl);
      if (!file) {
        preview.hidden = true;
        if (hint) hint.hidden = false;
        meta.textContent = "";
        return;
      }
      objectUrl = URL.createObjectURL(file);
      preview.onload = function () { describe(preview, file); };
      preview.onerror = function () {
        preview.hidden = true;
        meta.textContent = file.name + " · this file does not look like an image we can read";
        meta.classList.add("is-warning");
      };
      preview.src = objectUrl;
      preview.hidden = false;
      if (hint) hint.hidden = true;
    }

    input.addEventListener("change", show);
    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.add("is-dragover"); });
    });
    ["dragleave", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("is-dragover"); });
    });
    document.querySelectorAll('input[name="aspect_ratio"]').forEach(function (radio) {
      radio.addEventListener("click", function () { zone.dataset.ratioTouched = "1"; });
    });
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
        button.textContent = "Copied";
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

  // Confirm before destructive actions.
  function setupConfirm(form) {
    form.addEventListener("submit", function (event) {
      if (!window.confirm(form.dataset.confirm)) event.preventDefault();
    });
  }

  function init(root) {
    root.querySelectorAll("[data-dropzone]").forEach(setupDropzone);
    root.querySelectorAll("textarea[data-counter]").forEach(setupCounter);
    root.querySelectorAll("[data-copy]").forEach(setupCopy);
    root.querySelectorAll("form[data-submit-once]").forEach(setupSubmitOnce);
    root.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
  }

  onReady(function () { init(document); });
  // Coming back with the browser's back button: submit buttons work again.
  window.addEventListener("pageshow", function (event) {
    if (!event.persisted) return;
    document.querySelectorAll('form[data-submit-once] button[type="submit"], button[form][type="submit"]')
      .forEach(function (button) { button.disabled = button.hasAttribute("data-disabled-by-server"); });
  });
  // Content swapped in by htmx (cards that finished, the price box) gets the same care.
  document.addEventListener("htmx:load", function (event) {
    if (event.target !== document.body) {
      event.target.querySelectorAll("form[data-confirm]").forEach(setupConfirm);
    }
  });
})();
