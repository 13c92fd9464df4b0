"""Dark Fusion palette."""

from PySide6.QtGui import QColor, QPalette


def apply_dark(app) -> None:
    app.setStyle("Fusion")
    p = QPalette()
    base, alt, text = QColor(37, 38, 41), QColor(30, 31, 34), QColor(220, 220, 220)
    for role, c in ((QPalette.ColorRole.Window, base), (QPalette.ColorRole.WindowText, text),
                    (QPalette.ColorRole.Base, alt), (QPalette.ColorRole.AlternateBase, base),
                    (QPalette.ColorRole.ToolTipBase, base), (QPalette.ColorRole.ToolTipText, text),
                    (QPalette.ColorRole.Text, text), (QPalette.ColorRole.Button, QColor(48, 50, 54)),
                    (QPalette.ColorRole.ButtonText, text), (QPalette.ColorRole.Highlight, QColor(64, 128, 208)),
                    (QPalette.ColorRole.HighlightedText, QColor(255, 255, 255)),
                    (QPalette.ColorRole.BrightText, QColor(255, 80, 80))):
        p.setColor(role, c)
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.Text, QColor(120, 120, 120))
    p.setColor(QPalette.ColorGroup.Disabled, QPalette.ColorRole.ButtonText, QColor(120, 120, 120))
    app.setPalette(p)
