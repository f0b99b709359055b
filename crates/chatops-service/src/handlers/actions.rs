//! What the `exec` and webhook handler kinds share: the template names a command may use,
//! the values a job renders its templates with, and the command's label for messages.

use crate::actions::{CommandContext, TemplateNames, TemplateValues, template_values};
use crate::handler::HandlerContext;
use crate::spec::CommandSpec;

/// The built-in names and the command's declared arguments.
pub(super) fn names(spec: &CommandSpec) -> TemplateNames {
    TemplateNames::with_args(spec.args.raw().map(|a| a.name.as_str()))
}

/// The job's arguments and who ran it where.
pub(super) fn values(ctx: &HandlerContext) -> TemplateValues {
    let c = &ctx.job.command;
    template_values(
        ctx.args(),
        CommandContext {
            command: &c.command,
            user_id: &c.user_id,
            user_name: &c.user_name,
            channel_id: &c.channel_id,
            team_id: &c.team_id,
            correlation_id: ctx.job.correlation_id.as_str(),
        },
    )
}

/// The command as the user typed it, for messages.
pub(super) fn label(ctx: &HandlerContext) -> String {
    let text = ctx.text().trim();
    if text.is_empty() { ctx.spec.name.clone() } else { format!("{} {text}", ctx.spec.name) }
}
