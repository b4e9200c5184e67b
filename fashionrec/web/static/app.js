// fashionrec web pages: the little behaviour that helps, none that is needed.
// Every page works without this script; it is loaded from /static (CSP: script-src 'self', no inline code).
(function () {
  "use strict";

  // A product picture that cannot be shown (no image file for the product) becomes a quiet placeholder.
  function markMissing(img) {
    img.classList.add("missing");
  }
  document.querySelectorAll("img[data-product]").forEach(function (img) {
    if (img.complete && img.naturalWidth === 0 && img.getAttribute("src")) {
      markMissing(img);
    } else {
      img.addEventListener("error", function () { markMissing(img); });
    }
  });

  // The facet list starts folded on a phone, so the products come first.
  if (window.matchMedia && window.matchMedia("(max-width: 860px)").matches) {
    document.querySelectorAll("details[data-collapse-narrow]").forEach(function (details) {
      details.open = false;
    });
  }

  // Photo search: drop a file on the drop zone, or choose one, and the form is sent.
  document.querySelectorAll("form[data-search-form]").forEach(function (form) {
    var zone = form.querySelector("[data-dropzone]");
    var input = form.querySelector('input[type="file"]');
    var url = form.querySelector('input[type="url"]');
    var shown = form.querySelector("[data-filename]");
    var button = form.querySelector('button[type="submit"]');
    if (!zone || !input) {
      return;
    }

    function showName() {
      var file = input.files && input.files[0];
      if (shown) {
        shown.textContent = file ? "Selected: " + file.name : "";
      }
      if (file && url) {
        url.value = "";  // a chosen file wins over an old URL
      }
    }

    input.addEventListener("change", showName);

    ["dragenter", "dragover"].forEach(function (type) {
      zone.addEventListener(type, function (event) {
        event.preventDefault();
        zone.classList.add("dragging");
      });
    });
    ["dragleave", "dragend", "drop"].forEach(function (type) {
      zone.addEventListener(type, function () { zone.classList.remove("dragging"); });
    });
    zone.addEventListener("drop", function (event) {
      event.preventDefault();
      var files = event.dataTransfer && event.dataTransfer.files;
      if (!files || !files.length) {
        return;
      }
      var transfer = new DataTransfer();
      transfer.items.add(files[0]);
      input.files = transfer.files;
      showName();
      if (form.requestSubmit) {
        form.requestSubmit();
      } else {
        form.submit();
      }
    });

    form.addEventListener("submit", function () {
      if (button) {
        button.disabled = true;
        button.textContent = "Searching…";
      }
    });
  });

  // Coming back to a page from the history: the search button works again.
  window.addEventListener("pageshow", function () {
    document.querySelectorAll("form[data-search-form] button[type='submit']").forEach(function (button) {
      button.disabled = false;
      button.textContent = "Find similar products";
    });
  });
})();
