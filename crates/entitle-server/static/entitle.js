// The portal works without this script; with it, destructive actions ask in a dialog
// instead of on a page of their own, the header folds away on a phone, values can be
// copied with one click, and many rows can be ticked at once.
(function () {
  'use strict';
  document.documentElement.classList.add('js');

  // Forms marked data-confirm ask first. The server asks too (a confirmation page) when
  // the form arrives without confirmed=yes, so the question is never skipped.
  // A bulk form's question names the action and everyone ticked, as the server's
  // confirmation page does.
  function bulkQuestion(form) {
    var action = form.querySelector('[name=action]');
    var label = action.options[action.selectedIndex].text;
    var names = [];
    document.querySelectorAll('input[name=member][form="' + form.id + '"]:checked').forEach(function (box) {
      names.push(box.dataset.name);
    });
    var count = names.length === 1 ? '1 person' : names.length + ' people';
    var list = names.length > 1 ? names.slice(0, -1).join(', ') + ' and ' + names[names.length - 1] : names.join('');
    return { title: label + ' ' + count + '?', detail: list, button: label.split(' ')[0] };
  }

  function confirmDialog(form) {
    var words = form.dataset.confirm === 'bulk' ? bulkQuestion(form) : {
      title: form.dataset.confirm,
      detail: form.dataset.confirmDetail,
      button: form.dataset.confirmButton
    };
    var dialog = document.createElement('dialog');
    dialog.className = 'confirm';
    dialog.setAttribute('aria-labelledby', 'confirm-title');
    var title = document.createElement('h2');
    title.id = 'confirm-title';
    title.textContent = words.title;
    dialog.appendChild(title);
    if (words.detail) {
      var detail = document.createElement('p');
      detail.textContent = words.detail;
      dialog.appendChild(detail);
    }
    var actions = document.createElement('div');
    actions.className = 'actions';
    var cancel = document.createElement('button');
    cancel.type = 'button';
    cancel.className = 'primary secondary';
    cancel.textContent = 'Cancel';
    var go = document.createElement('button');
    go.type = 'button';
    go.className = 'primary danger';
    go.textContent = words.button || 'Confirm';
    actions.appendChild(cancel);
    actions.appendChild(go);
    dialog.appendChild(actions);
    cancel.addEventListener('click', function () { dialog.close(); });
    dialog.addEventListener('close', function () { dialog.remove(); });
    go.addEventListener('click', function () {
      var confirmed = document.createElement('input');
      confirmed.type = 'hidden';
      confirmed.name = 'confirmed';
      confirmed.value = 'yes';
      form.appendChild(confirmed);
      dialog.close();
      form.requestSubmit();
    });
    document.body.appendChild(dialog);
    dialog.showModal();
    cancel.focus();
  }

  document.addEventListener('submit', function (event) {
    var form = event.target;
    if (!(form instanceof HTMLFormElement) || !form.dataset.confirm) return;
    if (form.querySelector('input[name=confirmed][value=yes]')) return;
    // A bulk form asks only for the actions that lose something.
    if (form.dataset.confirmWhen) {
      var chosen = form.querySelector('[name=action]');
      if (!chosen || form.dataset.confirmWhen.split(' ').indexOf(chosen.value) < 0) return;
    }
    event.preventDefault();
    event.stopPropagation();
    confirmDialog(form);
  }, true);

  function ready() {
    var header = document.querySelector('header.site');
    var toggle = header && header.querySelector('.menu-toggle');
    if (toggle && !toggle.dataset.bound) {
      toggle.dataset.bound = 'yes';
      toggle.addEventListener('click', function () {
        var open = header.classList.toggle('open');
        toggle.setAttribute('aria-expanded', open ? 'true' : 'false');
      });
    }

    document.querySelectorAll('button.copy[data-copy]:not([data-bound])').forEach(function (button) {
      button.dataset.bound = 'yes';
      button.hidden = false;
      button.addEventListener('click', function () {
        var source = document.getElementById(button.dataset.copy);
        var text = source ? source.textContent.trim() : '';
        var done = function () {
          var label = button.textContent;
          button.textContent = 'Copied';
          setTimeout(function () { button.textContent = label; }, 1500);
        };
        if (navigator.clipboard && window.isSecureContext) {
          navigator.clipboard.writeText(text).then(done);
        } else {
          var area = document.createElement('textarea');
          area.value = text;
          document.body.appendChild(area);
          area.select();
          document.execCommand('copy');
          area.remove();
          done();
        }
      });
    });

    // The first field the server marked wrong gets the focus.
    var wrong = document.querySelector('[aria-invalid=true]');
    if (wrong) wrong.focus();
  }

  // Ticking rows: "all on this page", and the count beside the bulk actions.
  document.addEventListener('change', function (event) {
    var box = event.target;
    if (!(box instanceof HTMLInputElement) || box.type !== 'checkbox') return;
    var form = box.form || box.closest('form');
    var scope = document.getElementById(box.getAttribute('form') || '') || form;
    if (!scope) return;
    var boxes = document.querySelectorAll('input[type=checkbox][name=member][form="' + scope.id + '"]');
    if (box.dataset.selectAll !== undefined) {
      boxes.forEach(function (b) { b.checked = box.checked; });
    }
    var count = 0;
    boxes.forEach(function (b) { if (b.checked) count += 1; });
    var shown = scope.querySelector('[data-selected-count]');
    if (shown) shown.textContent = count === 1 ? '1 person selected' : count + ' people selected';
  });

  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', ready);
  } else {
    ready();
  }
  document.addEventListener('htmx:afterSettle', ready);
})();
