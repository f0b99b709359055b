mod analyze;
mod compare;
mod join;
mod origin;
mod support;
mod table;
